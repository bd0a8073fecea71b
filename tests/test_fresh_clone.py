"What a fresh clone gets: the four shipped dense checkpoints, committed, intact and loadable, within the size budget."
import subprocess
import pytest

from vlprune_nb.config import read_json, sha256

FAMILIES = ("blip", "xvlm", "clip", "vit")

@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    dst = tmp_path_factory.mktemp("clone") / "vlprune_nb"
    subprocess.run(["git", "clone", "-q", str(root), str(dst)], check=True)
    return dst

def test_checkpoints_are_committed_and_intact(clone):
    total = 0
    for fam in FAMILIES:
        d = clone / "data" / "checkpoints" / fam
        man = read_json(d / "manifest.json")
        for name, digest in man["sha256"].items():
            assert sha256(d / name) == digest, f"{d / name} differs from its manifest"
        total += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        assert man["family"] == fam and man["steps"] > 0 and man["dense_metrics"]
    assert total <= 40 * 2**20, f"shipped checkpoints take {total / 2**20:.1f} MiB (budget 40)"

def test_checkpoints_load_from_the_clone(clone):
    from vlprune_nb import families
    for fam in FAMILIES:
        model = families.load(clone / "data" / "checkpoints" / fam)
        assert families.family_of(model).name == fam and families.prunable(model)
