"""`vlprune prune --format compressed-tensors`: the pruned weights written with the compressed-tensors package's
compressors, read back with the same package bit for bit, smaller on disk than dense; N:M masks checked on save and
load."""
import json
import pytest, torch
from safetensors.torch import load_file

from vlprune_nb import families
from vlprune_nb.cli import prune_checkpoint
from vlprune_nb.deploy import COMPRESSED_DIR, load_compressed
from vlprune_nb.masks import load_masks, is_nm

@pytest.mark.parametrize("method,fmt", [("wanda", "sparse-bitmask"), ("wanda_2of4", "sparse-24-bitmask")])
def test_compressed_checkpoint_round_trips(tmp_path, method, fmt):
    out = tmp_path / "pruned"
    report = prune_checkpoint("blip", out, method, 0.5, calib_batches=2, batch_size=4, progress=False, format="compressed-tensors")
    pruned = families.load(out)                                  # the dense pruned checkpoint, zeros stored
    back = load_compressed(out / COMPRESSED_DIR, families.load("blip"))   # the dense model, overwritten from the compressed folder
    want, got = pruned.state_dict(), back.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    masks = load_masks(out / "masks.safetensors", pruned)
    params = dict(pruned.named_parameters())
    assert all((params[n][~m] == 0).all() for n, m in masks.items())
    cfg = json.loads((out / COMPRESSED_DIR / "config.json").read_text())["quantization_config"]["sparsity_config"]
    assert cfg["format"] == fmt and abs(cfg["global_sparsity"] - 0.5) < 1e-9
    stored = load_file(out / COMPRESSED_DIR / "model.safetensors")
    assert any(k.endswith(".bitmask") for k in stored) and not any(k in stored for k in masks)   # no prunable weight stored dense
    sizes = report["compressed_tensors"]
    assert sizes["format"] == fmt and sizes["bytes"] < 0.65 * sizes["dense_bytes"]
    assert (out / COMPRESSED_DIR / "recipe.yaml").read_text().startswith(f"method: {method}\nsparsity: 0.5\n")
    if method.endswith("2of4"): assert all(is_nm(m, 2, 4) for m in masks.values())

def test_nm_method_refuses_another_sparsity(tmp_path):
    with pytest.raises(ValueError, match="keeps 2 of every 4 weights: its sparsity is 0.5, not 0.7"):
        prune_checkpoint("blip", tmp_path / "x", "wanda_2of4", 0.7, calib_batches=1, batch_size=4, progress=False)
    assert not (tmp_path / "x").exists()
