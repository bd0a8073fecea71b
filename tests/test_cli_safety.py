"""Issue 20 on the command line, as a user meets it: `python -m vlprune_nb.cli`, --force over the source checkpoint or a
folder of the user's, a kill while OUT is written, a leftover `.OUT.old`, two runs for one OUT, an unwritable OUT, an
oversized calibration image, the umask. Real processes and signals, tiny budgets."""
import hashlib, json, os, shutil, signal, struct, subprocess, sys, time, zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "VLPRUNE_PROGRESS": "off"}
MAIN = "import sys; from vlprune_nb.cli import main; sys.exit(main())"
CKPTS = ROOT / "data" / "checkpoints"


def vlprune(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", MAIN, *map(str, args)], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600, **kw)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", MAIN, *map(str, args)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def omp(ckpt, out, *rest):
    return ("prune", ckpt, "--method", "omp", "--sparsity", "0.5", "--out", out, "--device", "cpu", *rest)


def sha(path: Path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]: return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_python_m_runs_the_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vlprune_nb.cli", *omp("vit", tmp_path / "x")], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and (tmp_path / "x" / "masks.safetensors").is_file(), (r.returncode, r.stderr[-1500:])
    assert json.loads(r.stdout)["sparsity"] == 0.5


def test_force_never_writes_over_the_source_nor_a_users_folder(tmp_path):
    ck = tmp_path / "my_vit"; shutil.copytree(CKPTS / "vit", ck)
    before = {f.name: sha(f) for f in ck.iterdir() if f.is_file()}
    r = vlprune(*omp(ck, ck, "--force"))
    assert r.returncode == 2 and "is the source checkpoint" in r.stderr, r.stderr[-1500:]
    assert {f.name: sha(f) for f in ck.iterdir() if f.is_file()} == before, "the source checkpoint is untouched"
    mine = tmp_path / "thesis"; mine.mkdir(); (mine / "thesis.tex").write_text("two years")
    r = vlprune(*omp("vit", mine, "--force"))
    assert r.returncode == 2 and "thesis.tex" in r.stderr and "did not write" in r.stderr, r.stderr[-1500:]
    assert os.listdir(mine) == ["thesis.tex"] and (mine / "thesis.tex").read_text() == "two years"


def test_an_output_left_aside_is_restored_not_deleted(tmp_path):
    out = tmp_path / "out"
    assert vlprune(*omp("vit", out)).returncode == 0
    first = sha(out / "model.safetensors")
    os.replace(out, tmp_path / ".out.old")               # what a kill between a --force run's two renames left
    r = vlprune(*omp("vit", out, "--method", "random"))
    assert r.returncode != 0 and "restored" in r.stderr and "exists" in r.stderr, r.stderr[-1500:]
    assert sha(out / "model.safetensors") == first and hidden(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_while_writing_leaves_nothing_for_long(sig, tmp_path):
    """Killed while its hidden folder exists: SIGTERM cleans up at once (exit 143); SIGKILL cannot, and the next run for
    the same OUT removes what it left. Either way OUT is never half there."""
    out = tmp_path / "out"
    p = start(*omp("blip", out))
    end = time.time() + 120
    while time.time() < end and p.poll() is None and not [h for h in hidden(tmp_path) if not h.endswith(".lock")]:
        time.sleep(0.002)
    assert p.poll() is None, f"the run ended before it was caught writing: {p.stderr.read()[-1000:]}"
    os.kill(p.pid, sig); p.wait(timeout=60)
    assert not out.exists() or (out / "vlprune.json").is_file(), "OUT is whole or absent"
    if sig == signal.SIGTERM:
        assert p.returncode == 143 and "interrupted by SIGTERM" in p.stderr.read()
        assert hidden(tmp_path) == [], hidden(tmp_path)
        return
    r = vlprune(*omp("blip", out, "--force"))
    assert r.returncode == 0, r.stderr[-1500:]
    assert hidden(tmp_path) == [], hidden(tmp_path)


def test_two_runs_for_one_out_never_both_succeed(tmp_path):
    """Two runs for one OUT started together (two methods, both with --force, each calibrating for some seconds): one
    writes OUT, the other is refused at once, told which process holds it; OUT holds the winner's output whole."""
    out, calib = tmp_path / "out", ("--sparsity", "0.5", "--calib-batches", 16, "--batch-size", 32, "--out", tmp_path / "out",
                                    "--device", "cpu", "--force")
    runs = {m: start("prune", "blip", "--method", m, *calib) for m in ("multiflow", "snip")}
    res = {m: (p, *p.communicate(timeout=600)) for m, p in runs.items()}
    ok = [m for m, (p, _, _) in res.items() if p.returncode == 0]
    assert len(ok) == 1, f"{len(ok)} runs were told they wrote OUT: {[(m, p.returncode, e[-300:]) for m, (p, _, e) in res.items()]}"
    (lost,) = set(runs) - set(ok)
    p, _, err = res[lost]
    assert p.returncode == 1 and "another vlprune run" in err and f"process {runs[ok[0]].pid}" in err, err[-1500:]
    assert json.loads((out / "report.json").read_text())["prune"]["method"] == ok[0] and hidden(tmp_path) == []


def _png_header(path: Path, w: int, h: int) -> Path:
    "A PNG that holds its header only: what PIL sees of a 20000×20000 photograph before decoding it."
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))
    return path


def test_checked_before_the_work(tmp_path):
    "An unwritable OUT (exit 2) and an oversized calibration image (exit 1) are reported by name, no traceback, in seconds."
    if os.geteuid() == 0: ro = Path("/sys")                               # root writes any folder; /sys refuses even root
    else: ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o555)
    r = vlprune(*omp("blip", ro / "vlprune_out"))
    assert r.returncode == 2 and "--out" in r.stderr and str(ro) in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    images = tmp_path / "images"; images.mkdir()
    for i in range(4): _png_header(images / f"{i}.png", 32, 32)
    _png_header(images / "huge.png", 20_000, 20_000)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([{"image": f"{i}.png", "caption": "a red square"} for i in range(4)] + [{"image": "huge.png", "caption": "x"}]))
    r = vlprune("prune", "blip", "--method", "multiflow", "--sparsity", "0.5", "--calib", ann, "--image-root", images,
                "--calib-batches", 1, "--batch-size", 5, "--out", tmp_path / "out")
    assert r.returncode == 1 and "huge.png" in r.stderr and "20000×20000" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_output_permissions_follow_the_umask(tmp_path):
    r = vlprune(*omp("vit", tmp_path / "out"), preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr[-1500:]
    modes = {p.name: p.stat().st_mode & 0o777 for p in [tmp_path / "out", *(tmp_path / "out").iterdir()]}
    assert all(m == (0o755 if (tmp_path / "out" / n).is_dir() or n == "out" else 0o644) for n, m in modes.items()), modes
