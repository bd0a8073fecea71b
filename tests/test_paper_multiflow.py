"The MULTIFLOW chapter: committed executed from the shipped records; a fresh run draws the same tables and figures."
import json
import papermill as pm

def streams(nb: dict) -> list[str]:
    "The printed text of every code cell (the tables), in order; a cell's stdout in one piece (Jupyter splits it by timing)."
    out = ["".join("".join(o["text"]) for o in c.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stdout")
           for c in nb["cells"] if c["cell_type"] == "code"]
    return [t for t in out if t]

def test_a_fresh_run_gives_the_committed_tables_and_figures(root, tmp_path, shipped_store):
    committed = json.loads((root / "nbs" / "paper_multiflow.ipynb").read_text())
    assert streams(committed), "the chapter is committed executed (outputs kept)"
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(root / "nbs" / "paper_multiflow.ipynb"), str(out), cwd=str(root / "nbs"), progress_bar=False,
                        parameters={"fig_dir": str(tmp_path / "figs"), "out_dir": str(shipped_store)}, kernel_name="python3")
    assert streams(json.loads(out.read_text())) == streams(committed)
    drawn = sorted(p.name for p in (tmp_path / "figs").iterdir())
    shipped = sorted(p.name for p in (root / "figures").glob("multiflow_*"))
    assert drawn == shipped, "every committed MULTIFLOW figure is redrawn from the committed records, and only those"
