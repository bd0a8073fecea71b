"""The explorer driven as a person drives it, through its widgets: set a control's value, and the figures and tables
change accordingly; a choice that cannot run is a message in the page, never an exception. Small settings
(calibration batches of 4-8 pairs, a 2-step search of the ViT) keep the file under a minute on two cores."""
import pytest

from vlprune_nb import explore, pruning, families, data
from vlprune_nb.masks import sparsity_report
from vlprune_nb.explore import MasksTab, RecordsTab, StructuresTab, MaskCache, LIVE


@pytest.fixture(scope="module")
def cache():
    return MaskCache()


@pytest.fixture
def counted(monkeypatch):
    "How often the tabs score (pruning.scores) and prune (pruning.prune), by method."
    calls = {"scores": [], "prune": []}
    scores, prune = pruning.scores, pruning.prune
    monkeypatch.setattr(pruning, "scores", lambda model, method, *a, **k: (calls["scores"].append(method), scores(model, method, *a, **k))[1])
    monkeypatch.setattr(pruning, "prune", lambda model, method, *a, **k: (calls["prune"].append(method), prune(model, method, *a, **k))[1])
    return calls


def test_slider_reallocates_cached_scores_and_redraws(cache, counted):
    tab = MasksTab("blip", "multiflow", 0.9, "omp", calib_batches=1, batch_size=8, cache=cache, background=False)
    assert tab.error is None and tab.message.value == ""
    before = {"heatmap": tab.heatmap.value, "dead": tab.dead.value, "hist": tab.hist.value, "summary": tab.summary.value,
              "overlap": tab.overlap.value}
    j90, dead90 = tab.state["jaccard"]["kept"], tab.state["dead"]["multiflow"]["dead_rows"]
    for s in (0.63, 0.75, 0.5):
        tab.sparsity.value = s
        assert tab.error is None and abs(tab.state["overall"]["multiflow"] - s) < 1e-6 and abs(tab.state["overall"]["omp"] - s) < 1e-6
        assert f"{100 * s:.1f} %" in tab.summary.value
    after = {"heatmap": tab.heatmap.value, "dead": tab.dead.value, "hist": tab.hist.value, "summary": tab.summary.value,
             "overlap": tab.overlap.value}
    assert all(after[k] != before[k] for k in before), [k for k in before if after[k] == before[k]]
    assert tab.state["jaccard"]["kept"] > j90, "at a lower sparsity more is kept, and more of it by both"
    assert tab.state["dead"]["multiflow"]["dead_rows"] < dead90
    assert counted["scores"] == ["multiflow", "omp"] and counted["prune"] == [], "scored once per method, then only re-allocated"
    # what the page shows is what prune gives
    model = families.load("blip")
    masks = pruning.prune(model, "multiflow", 0.5, data.calibration_batches(model, 1, 8)).masks
    rep = sparsity_report(model, masks)["modalities"]
    assert tab.state["modalities"]["multiflow"] == {m: v["sparsity"] for m, v in rep.items()}
    # another weight for the histogram: the histogram changes, nothing is scored again
    h = tab.hist.value
    tab.layer.value = tab.layer.options[-1][1]
    assert tab.hist.value != h and counted["scores"] == ["multiflow", "omp"]
    # no second method: no overlap
    tab.compare.value = explore.NONE
    assert tab.state["jaccard"] is None and "second method" in tab.overlap.value


def test_bad_choices_are_messages_in_the_page(cache):
    tab = MasksTab("blip", "omp", 0.9, None, calib_batches=0, cache=cache, background=False)
    assert tab.error is None
    tab.method.value = "snip"                                     # data-driven, no calibration batches
    assert "data-driven" in tab.message.value and "snip" in tab.message.value and tab.outputs.layout.display == "none"
    tab.calib_batches.value = 1                                   # fixed: drawn again, the message gone
    assert tab.message.value == "" and tab.outputs.layout.display == "flex" and tab.state["method"] == "snip"
    tab.checkpoint.value = "/no/such/checkpoint"
    assert "neither a family" in tab.message.value and tab.outputs.layout.display == "none"
    tab.checkpoint.value = ""
    assert tab.message.value == ""


def test_checkpoint_directory_and_its_family(cache):
    "A directory is read by families.load; modalities and tasks come from its family (the ViT: vision, classification)."
    tab = MasksTab(str(families.checkpoint_dir("vit")), "omp", 0.75, "local_mp", cache=cache, background=False)
    assert tab.error is None and tab.checkpoint.value
    assert set(tab.state["modalities"]["omp"]) == {"vision"} and set(tab.state["tasks"]["omp"]) == {"classification"}
    assert abs(tab.state["modalities"]["local_mp"]["vision"] - 0.75) < 1e-3


def test_iterative_method_is_pruned_per_sparsity_and_says_so(cache, counted):
    tab = MasksTab("vit", "itersnip", 0.9, None, calib_batches=2, batch_size=4, cache=cache, background=False)
    assert tab.error is None and "iterative" in tab.note.value and not tab.state["reallocated"]
    assert tab.hist.layout.display == "none" and "no single score" in tab.hist_note.value
    tab.sparsity.value = 0.5
    tab.sparsity.value = 0.9                                      # back to a sparsity already pruned: from the cache
    assert counted["prune"] == ["itersnip", "itersnip"] and abs(tab.state["overall"]["itersnip"] - 0.9) < 1e-5


def test_background_worker_shows_progress(monkeypatch):
    "In a kernel the tab computes in a thread; every library bar it opens reports to the page's own progress bar."
    seen = []
    sink = explore.ProgressView.sink
    monkeypatch.setattr(explore.ProgressView, "sink", lambda self, st: (seen.append(st.get("prefix")), sink(self, st)))
    tab = MasksTab("vit", "snip", 0.8, None, calib_batches=3, batch_size=4, cache=MaskCache(), background=True)
    tab.wait()
    assert tab.error is None and abs(tab.state["overall"]["snip"] - 0.8) < 1e-5
    assert "calibration batches" in seen and "snip: gradients" in seen, set(seen)
    assert tab.progress.widget.layout.display == "none", "the bar goes when the work is done"


def test_records_tab_filters_and_compares_with_dense():
    tab = RecordsTab(background=False)
    if not any(r["config"]["family"] == "xvlm" and r["config"]["task"] == "retrieval" for r in tab.all):
        pytest.skip("the store has no XVLM retrieval records")
    tab.family.value, tab.task.value = "xvlm", "retrieval"
    keys = tab.select.value
    assert keys and all("retrieval" in k for k in keys) and tab.message.value == ""
    rows = tab.state["rows"]
    assert {r["key"] for r in rows} == set(keys)
    pruned = [r for r in rows if not r["key"].startswith("xvlm_dense")]
    assert pruned and all(r["dense TR@1"] is not None for r in pruned), "each pruned run beside the dense model at its budget"
    assert tab.layers.layout.display == "block" and set(next(iter(tab.state["layers"].values()))[0]) == {"modality", "layer", "sparsity"}
    html = tab.metrics.value
    tab.method.value = "omp"
    omp = {r["key"] for r in tab.all if (r["config"]["family"], r["config"]["task"], r["config"]["method"]) == ("xvlm", "retrieval", "omp")}
    assert set(tab.select.value) == omp and tab.metrics.value != html, "the method filter keeps that method's records, every sparsity"
    tab.family.value = "clip"                                    # no CLIP records: said so
    assert "no record" in tab.message.value
    tab.family.value, tab.task.value = "vit", "retrieval"        # a family without that task
    assert "has no task 'retrieval'" in tab.message.value and tab.select.options == ()


def test_structures_tab_live_search_and_bad_task(cache):
    tab = StructuresTab(records=[], family="vit", task="classification", ratio=2, steps=2, batch_size=4, repeats=2,
                        cache=cache, background=False)
    assert tab.source.value == LIVE and tab.outputs.layout.display == "none"
    tab.run.click()
    assert tab.message.value == "" and tab.outputs.layout.display == "flex", tab.message.value
    st = tab.state
    assert st["params"]["extracted"] < st["params"]["dense"] and st["flops"]["extracted"] < st["flops"]["dense"]
    assert all(0 < r["proportion"] <= 1 for r in st["rows"]) and abs(sum(st["shares"].values()) - 1) < 1e-9
    assert st["latency"]["b1"][0] > 0 and "latency b1" in tab.costs.value
    tab.task.value = "retrieval"                                 # the ViT has no retrieval: a message, no search
    assert "has no task 'retrieval'" in tab.message.value and tab.run.disabled
    tab.run.click()
    assert tab.state is st
