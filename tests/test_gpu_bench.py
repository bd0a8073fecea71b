"""benchmarks/gpu.py --quick on the CPU: the JSON has every part, and the relations that must hold whatever the machine
(no timing assertions): the masks have the asked sparsity, the ratios are the recorded seconds' ratios, the seconds
per fine-tuning step are the mean of the steps after the warm-up, the 2:4 part says why no kernel runs on a CPU.
Without --quick and without a GPU the script refuses, naming --device."""
import json, math, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run(*args, env=ENV):
    return subprocess.run([sys.executable, "benchmarks/gpu.py", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    res = run("--quick", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == r, "--out holds what the last stdout line says"
    return r


def test_parts_and_settings(quick):
    import torch
    assert quick["errors"] == {} and {"pruning", "finetune", "sparse24"} <= set(quick)
    assert quick["quick"] is True and quick["device"] == "cpu" and quick["device_name"]
    assert quick["torch"] == torch.__version__
    s = quick["settings"]
    assert s["model"] == "blip" and s["size"] == "quick" and s["mixed_precision"] == "bf16"
    assert (s["batches"], s["batch_size"]) == (2, 4)                   # scale.py's quick counts


def test_pruning_masks_and_ratios(quick):
    p, s = quick["pruning"], quick["settings"]
    assert p["pairs"] == s["batches"] * s["batch_size"] and p["params"] > 0
    assert set(p["seconds"]) == {"forward", "multiflow", "snip"} and all(v > 0 for v in p["seconds"].values())
    for method in ("multiflow", "snip"):
        m = p["masks"][method]
        assert 0 < m["prunable"] < p["params"]
        assert m["pruned"] == math.floor(s["sparsity"] * m["prunable"]), method      # prune's contract: ⌊s·N⌋ pruned
        assert m["sparsity"] == pytest.approx(s["sparsity"], abs=1e-5)
    assert p["multiflow_over_forward"] == pytest.approx(p["seconds"]["multiflow"] / p["seconds"]["forward"], rel=1e-3)
    assert p["snip_over_forward"] == pytest.approx(p["seconds"]["snip"] / p["seconds"]["forward"], rel=1e-3)
    assert set(p["peak_mb"]) == {"forward", "multiflow", "snip"}
    assert all(v is None for v in p["peak_mb"].values())               # no device memory to count on the CPU


def test_finetune_steps_after_warmup(quick):
    f, s = quick["finetune"], quick["settings"]
    assert f["mixed_precision"] == "bf16" and f["masks"] == "multiflow" and f["batch_size"] == s["ft_batch"]
    assert len(f["step_s"]) == s["ft_steps"] - s["ft_warmup"] and all(x > 0 for x in f["step_s"])
    assert f["s_per_step"] == pytest.approx(sum(f["step_s"]) / len(f["step_s"]), rel=1e-4)
    assert f["total_s"] > sum(f["step_s"]) and f["peak_mb"] is None


def test_two_four_says_why_no_kernel_on_cpu(quick):
    t = quick["sparse24"]
    assert t["kernel"] is False and t["note"].startswith("no 2:4 sparse kernel exists on CPU")
    assert set(t["layers"]) == {"qkv", "attn_out", "fc1", "fc2"}
    assert all(rec["csr_max_abs_diff"] < 1e-4 for rec in t["layers"].values())
    assert set(t["end_to_end"]["ms"]) == {"dense"} and t["end_to_end"]["speedup"] == {}
    try: import torchao  # noqa: F401
    except ImportError: assert quick["torchao"] is None and t["torchao"]["installed"] is False and "not installed" in t["torchao"]["note"]
    else: assert t["torchao"]["installed"] is True
    assert set(t["peak_mb"]) == {"layers", "end_to_end", "torchao"}


def test_refuses_the_full_run_without_a_gpu(tmp_path):
    "No GPU visible (CUDA_VISIBLE_DEVICES empty, whatever this machine has): refuse, unless --device cpu is explicit."
    env = {**ENV, "CUDA_VISIBLE_DEVICES": ""}
    res = run("--out", str(tmp_path / "x.json"), env=env)
    assert res.returncode == 2 and "no CUDA GPU here" in res.stderr and "--device cpu" in res.stderr
    res = run("--device", "cuda", "--out", str(tmp_path / "x.json"), env=env)
    assert res.returncode == 2 and "argument --device" in res.stderr and "not on this machine" in res.stderr
    res = run("--quick", "--ft-warmup", "3", "--out", str(tmp_path / "x.json"), env=env)
    assert res.returncode == 2 and "argument --ft-warmup" in res.stderr
    assert not (tmp_path / "x.json").exists()
