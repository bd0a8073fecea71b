"The papermill entry points with small parameters: the main job (nbs/run.ipynb) and the pretraining notebook."
import json, math
import papermill as pm
import pytest

from vlprune_nb.config import read_json

def execute(root, nb, out, **params):
    return pm.execute_notebook(str(root / "nbs" / nb), str(out), parameters=params, cwd=str(root), progress_bar=False,
                               kernel_name="python3")

def test_main_job_small(root, tmp_path):
    from vlprune_nb import families
    params = dict(family="blip", method="multiflow", sparsity=0.75, task="retrieval", calib_batches=1,
                  finetune_steps=2, eval_limit=20, out_dir=str(tmp_path / "results"), fig_dir=str(tmp_path / "figs"))
    execute(root, "run.ipynb", tmp_path / "out.ipynb", **params)
    recs = {read_json(p)["config"]["method"]: p for p in (tmp_path / "results").glob("*.json")}
    assert set(recs) == {"multiflow", "dense"}, "the dense model at the same budget and n is run for the figure"
    rec_file, dense = recs["multiflow"], read_json(recs["dense"])
    rec = read_json(rec_file)
    assert dense["config"]["finetune_steps"] == 2 and dense["metrics"]["n"] == 20
    model = families.load("blip")
    n = sum(dict(model.named_parameters())[r.name].numel() for r in families.prunable(model))
    assert rec["params"]["prunable"] == n
    assert rec["sparsity"]["overall"] == math.floor(0.75 * n) / n          # exactly floor(s·N) pruned
    assert rec["config"]["method"] == "multiflow" and rec["metrics"]["n"] == 20 and rec["masks_sha256"]
    assert (tmp_path / "figs" / "run_blip_multiflow_0.75_retrieval_s0_2steps_n20.png").stat().st_size > 1000
    # progress: one final line per bar in the saved notebook (the bars themselves went to the terminal), no widgets
    out = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = [o for c in out["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    bars = [t for o in outputs if o.get("name") == "stderr" for t in o["text"] if "%|" in t]
    assert bars and all(t.endswith("\n") and "\r" not in t for t in bars), bars
    assert any(t.startswith("finetune retrieval: 100%") for t in bars) and any(t.startswith("calibration batches: 100%") for t in bars)
    assert not any("IProgress" in "".join(o.get("text", "")) for o in outputs) and "widgets" not in out["metadata"]
    first_line = lambda nb: next(o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]
                                 if o.get("name") == "stdout")["text"][0]
    assert first_line(out).startswith(f"Computing {rec_file.stem} into {tmp_path / 'results'}"), first_line(out)
    shown = [o for c in out["cells"] if c["cell_type"] == "code" for o in c["outputs"] if "text/markdown" in o.get("data", {})]
    assert "".join(shown[0]["data"]["text/markdown"]).startswith("The shipped store has no record"), shown
    # asked again, the job computes again (the record is rewritten); with reuse it shows the record and says so first
    before = rec_file.stat().st_mtime_ns
    execute(root, "run.ipynb", tmp_path / "out2.ipynb", **params)
    untimed = lambda m: {k: v for k, v in m.items() if k != "eval_s"}          # the evaluation's wall time varies
    assert rec_file.stat().st_mtime_ns != before and untimed(read_json(rec_file)["metrics"]) == untimed(rec["metrics"])
    before = rec_file.stat().st_mtime_ns
    execute(root, "run.ipynb", tmp_path / "out3.ipynb", reuse=True, **params)
    assert rec_file.stat().st_mtime_ns == before
    assert first_line(json.loads((tmp_path / "out3.ipynb").read_text())).startswith(f"REUSING the record {rec_file}")

@pytest.mark.parametrize("bad, message", [(dict(sparsity=1.0), "sparsity must be a finite number >= 0 and < 1, got 1.0"), (dict(method="magic"), "method='magic'"),
                                          (dict(task="classification"), "task='classification'"), (dict(family="gpt"), "family='gpt'"),
                                          (dict(methd="omp"), "unknown parameter 'methd': this notebook declares family, method"),
                                          (dict(eval_limit=-995), "eval_limit"), (dict(seed="a"), "seed"),
                                          (dict(itm_k=-1), "itm_k"), (dict(calib_batches=0), "calib_batches"),
                                          (dict(family="deit", task="classification"),
                                           "family='deit' is a family without a shipped checkpoint; allowed: ")])
def test_main_job_bad_parameters_stop_at_the_first_cell(root, tmp_path, bad, message):
    with pytest.raises(pm.PapermillExecutionError, match=message):
        execute(root, "run.ipynb", tmp_path / "out.ipynb", out_dir=str(tmp_path / "results"), **bad)
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c["outputs"])]
    assert failed == [2]                                   # papermill's injected parameters, ours, then the check
    error = next(o for o in code[2]["outputs"] if o.get("output_type") == "error")
    assert len(error["traceback"]) == 1 and error["traceback"][0].startswith("ParameterError: ") and message in error["traceback"][0]
    assert not (tmp_path / "results").exists()             # nothing written

def test_pretrain_notebook_small(root, tmp_path):
    execute(root, "03_pretrain.ipynb", tmp_path / "out.ipynb", families="vit", steps=3, out_root=str(tmp_path / "ck"),
            task_steps=2, eval_limit=50)
    man = read_json(tmp_path / "ck" / "vit" / "manifest.json")
    assert man["steps"] == 3 and set(man["sha256"]) >= {"model.safetensors", "config.json"}
    assert 0 <= man["dense_metrics"]["classification"]["top1"] <= 100
    assert man["chance_metrics"]["classification"]["n"] == 50
