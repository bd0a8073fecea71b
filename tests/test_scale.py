"""benchmarks/scale.py --quick and benchmarks/main_job.py on small parameters: the JSON they print has the figures the
README renders, and the relations that must hold between them whatever the machine (no timing assertions)."""
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def last_json(cmd, cwd=ROOT) -> dict:
    res = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, cwd=cwd,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def quick():
    "The quick benchmark as a user first runs it: no --out. It writes the user's copy, never the shipped figures."
    shipped, out = ROOT / "benchmarks/results/scale.json", ROOT / "data/user/benchmarks/scale-quick.json"
    before = shipped.read_bytes()
    out.unlink(missing_ok=True)
    res = last_json(["benchmarks/scale.py", "--quick"])
    assert json.loads(out.read_text()) == res, "the user's file holds what the last stdout line says"
    assert shipped.read_bytes() == before, "a quick run rewrote the shipped benchmarks/results/scale.json"
    return res


def test_scale_json_has_every_item(quick):
    assert set(quick) >= {"pruning", "chita", "structured", "unstructured", "goals", "machine"}
    assert set(quick["pruning"]) == {"blip", "vit"} and set(quick["structured"]) == {"blip_retrieval", "blip_nlvr", "vit"}
    assert quick["machine"]["cpus"] >= 1 and quick["machine"]["threads"] >= 1


def test_pruning_cost_and_memory(quick):
    for name, r in quick["pruning"].items():
        assert 0 < r["prunable"] < r["params"], name
        for m in ("forward", "multiflow", "snip"):
            assert r["peak_rss_mb"][m] > r["baseline_rss_mb"] > 0, (name, m)      # the model and batches are resident
        # B = 500 rows of float32 over the prunable weights: the dense matrix CHITA streams to disk
        assert r["chita_b500"]["disk_gb"] == round(4 * 500 * r["prunable"] / 1e9, 1)
        assert r["chita_b500"]["ram_gb"] < r["chita_b500"]["disk_gb"] or r["prunable"] < 10**6
    c = quick["chita"]
    assert c["batches"] == 2 and c["peak_rss_mb"] >= c["rss_before_mb"] and c["disk_mb"] == round(4 * 2 * c["prunable"] / 2**20, 1)


def test_extracted_models_are_what_their_structure_implies(quick):
    for key, rec in quick["structured"].items():
        d = rec["dense"]
        for t, q in rec.items():
            if t in ("dense", "task", "profile"): continue
            assert q["params"] == q["implied_params"] < d["params"], (key, t)
            assert q["flops_b1"] < d["flops_b1"] and q["flops_b32"] > q["flops_b1"], (key, t)
        assert rec["4x"]["flops_b1"] < rec["2x"]["flops_b1"] and rec["4x"]["params"] < rec["2x"]["params"], key
        for r in ("2x", "4x"):                         # padding to a multiple of 16 adds entries, never removes any
            assert rec[f"{r}_r16"]["params"] >= rec[r]["params"] and rec[f"{r}_r16"]["flops_b1"] >= rec[r]["flops_b1"], (key, r)
            assert rec[r]["speedup_over_flop_reduction_b32"] == pytest.approx(
                rec[r]["speedup_b32"] / rec[r]["flop_reduction_b32"], abs=2e-3)
        prof = rec["profile"]
        assert prof["batch"] == 4
        assert prof["model"] in rec and all(prof[t]["total_ms"] > 0 for t in ("dense", prof["model"]))


def test_unstructured_sparsity(quick):
    inf, ck = quick["unstructured"]["inference"], quick["unstructured"]["checkpoint"]
    for s, v in inf.items():
        assert v["csr_stored_share"] == pytest.approx(1 - float(s), abs=0.01), s      # CSR stores the kept weights only
        assert v["bsr_stored_share"] >= v["csr_stored_share"], s                      # whole 16×16 blocks
        assert v["csr_max_abs_diff"] < 1e-4 and v["bsr_max_abs_diff"] < 1e-4, s       # the same function as dense
    assert ck["0.9"]["total_mb"] < ck["dense_mb"]
    assert ck["0.63"]["ratio_to_dense"] > ck["0.75"]["ratio_to_dense"] > ck["0.9"]["ratio_to_dense"]


def test_readme_table_renders_from_the_json(quick, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale
    (tmp_path / "s.json").write_text(json.dumps(quick))
    (tmp_path / "README.md").write_text(f"before\n{scale.MARK[0]}\nold\n{scale.MARK[1]}\nafter\n")
    text = scale.render_readme(tmp_path / "s.json", tmp_path / "README.md")
    assert text.startswith("before\n") and text.endswith(f"{scale.MARK[1]}\nafter\n") and "old" not in text
    assert "| ViT-B/16 |" in text and quick["machine"]["processor"] in text


def test_a_phase_open_on_several_threads_is_timed_once():
    """The ITM re-ranking scores its chunks on several threads: CPU seconds are the process's, so two threads inside
    the phase at once must not count the same seconds twice (on CI the phase then exceeded its enclosing one)."""
    import threading, time
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from main_job import Clock
    clock, both_in = Clock(), threading.Barrier(2)
    def chunk():
        with clock.phase("inner"):
            both_in.wait(); t = time.process_time()
            while time.process_time() - t < 0.2: pass
            both_in.wait()                                     # neither leaves before both have burnt their share
    with clock.phase("outer"):
        threads = [threading.Thread(target=chunk) for _ in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
    inner, outer = clock.t["inner"], clock.t["outer"]
    assert inner["calls"] == 2 and inner["cpu_s"] <= outer["cpu_s"] and inner["wall_s"] <= outer["wall_s"]


def test_main_job_phases(tmp_path):
    out = tmp_path / "main_job.json"
    r = last_json(["benchmarks/main_job.py", "--finetune-steps", "2", "--eval-limit", "10", "--profile-steps", "1",
                   "--threads", "1", "--out", str(out)])
    ph = r["phases"]
    assert set(ph) >= {"load", "calibration", "pruning", "fine-tuning", "evaluation", "evaluation: ITM re-ranking", "figure", "run (total)"}
    inner = sum(ph[k]["cpu_s"] for k in ("calibration", "pruning", "fine-tuning", "evaluation"))
    assert ph["run (total)"]["cpu_s"] >= inner * 0.99 and ph["evaluation"]["cpu_s"] >= ph["evaluation: ITM re-ranking"]["cpu_s"]
    assert ph["evaluation: ITM re-ranking"]["calls"] >= 1 and r["metrics"]["n"] == 10 and r["threads_used"] == 1
    assert r["config"]["finetune_steps"] == 2 and json.loads(out.read_text()) == r
    assert set(r["step_profile"]["seconds"]) == {"data", "forward", "backward", "optimizer"}
