"""Every committed figure is what the shipped records give: `vlprune-figures --check` redraws them from the records
and compares the data drawn (the sidecar `figures/<name>.json`), not the pixels; and redrawing unchanged records
leaves the committed files as they are."""
import hashlib, json, shutil

from vlprune_nb.multiflow_runs import figures_cli


def copy_figures(root, tmp_path):
    d = tmp_path / "figures"
    shutil.copytree(root / "figures", d)
    return d


def test_committed_figures_are_what_the_shipped_records_give(root, shipped_store, capsys):
    assert figures_cli(["--check", "--fig-dir", str(root / "figures"), "--out-dir", str(shipped_store)]) == 0
    assert capsys.readouterr().out.strip().endswith("is what the records give")


def test_check_names_the_figure_that_disagrees_and_the_first_difference(root, shipped_store, tmp_path, capsys):
    figs = copy_figures(root, tmp_path)
    side = json.loads((figs / "upop_tradeoff.json").read_text())
    row = next(a for a in side["axes"] if a["title"] == "blip nlvr")
    line = next(l for l in row["lines"] if l["label"] == "upop (retrained)")
    shipped = line["y"][0]                                   # BLIP NLVR UPop at 2x, as the records give it
    line["y"][0] = 78.0                                      # what the figure once showed, no record behind it
    (figs / "upop_tradeoff.json").write_text(json.dumps(side))
    assert figures_cli(["--check", "--fig-dir", str(figs), "--out-dir", str(shipped_store)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "upop_tradeoff: the figure differs from what the records give: .axes[0] 'blip nlvr'.lines[0] "
        f"'upop (retrained)'.y[0]: 78.0 != {shipped} (committed != records)")

    # the other way round: the committed figure as is, a record changed under it
    rec = next(shipped_store.glob("upop_blip_nlvr_2x_upop_*.json"))
    r = json.loads(rec.read_text()); r["metrics"]["nlvr_acc"] = 70.0; rec.write_text(json.dumps(r))
    assert figures_cli(["--check", "--fig-dir", str(root / "figures"), "--out-dir", str(shipped_store)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "upop_tradeoff: the figure differs from what the records give: .axes[0] 'blip nlvr'.lines[0] "
        f"'upop (retrained)'.y[0]: {shipped} != 70.0 (committed != records)")


def test_redrawing_unchanged_records_leaves_the_committed_files_alone(root, shipped_store, tmp_path):
    figs = copy_figures(root, tmp_path)
    (figs / "upop_tradeoff.png").write_bytes(b"drawn on another machine")       # other fonts, same data
    (figs / "multiflow_collapse_xvlm_retrieval.svg").unlink()
    digest = lambda: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(figs.iterdir())}
    before = digest()
    assert figures_cli(["--fig-dir", str(figs), "--out-dir", str(shipped_store)]) == 0
    after = digest()
    assert (figs / "upop_tradeoff.png").read_bytes() == b"drawn on another machine"
    assert {k: v for k, v in after.items() if before.get(k) != v} == \
        {"multiflow_collapse_xvlm_retrieval.svg": after["multiflow_collapse_xvlm_retrieval.svg"]}, "only the missing file"
