"The UPop chapter notebook through papermill with a tiny real sweep: records in the store, figures, tables."
import papermill as pm

from vlprune_nb.config import read_json


def test_paper_upop_tiny_sweep(root, tmp_path):
    out = tmp_path / "out.ipynb"
    params = dict(run_experiments=True, experiments="vit", search_steps=2, retrain_steps=1, dense_steps=1, eval_limit=16,
                  out_dir=str(tmp_path / "results"), fig_dir=str(tmp_path / "figs"))
    pm.execute_notebook(str(root / "nbs" / "paper_upop.ipynb"), str(out), parameters=params, cwd=str(root),
                        progress_bar=False, kernel_name="python3")
    recs = [read_json(p) for p in sorted((tmp_path / "results").glob("upop_vit_*.json"))]
    assert sorted(r["config"]["ratio"] for r in recs) == [1.25, 1.5, 2.0] and {r["kind"] for r in recs} == {"structured"}
    assert all((tmp_path / "results" / r["structure_file"]).is_file() for r in recs)
    assert len(list((tmp_path / "results").glob("upop_dense_vit_*.json"))) == 1          # one dense reference, reused
    for name in ("upop_retained_heatmap", "upop_component_shares", "upop_tradeoff"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 5000
    text = "".join("".join(o.get("text", "")) for c in read_json(out)["cells"] for o in c.get("outputs", []))
    assert "| 1.25x |" in text and "SYNTHETIC" not in text and "budgets: search_steps 2, retrain_steps 1" in text
