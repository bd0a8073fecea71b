"""The global and per-modality selections rank many tensors together without concatenating them (`pruning.lowest_counts`,
issue #25); their masks must be the ones the concatenating implementation gave. `concat_*` below are that
implementation as it was (a float copy of every tensor, `lowest_k` over the copy), kept here as the definition.

Checked on every shipped model (OMP, LAMP, l2-norm under the global threshold; MULTIFLOW, its edges and nodes
variants and its global variant under the modality prior; at 63 / 75 / 90 %) and on a base-size random BLIP
(226 M prunable weights: OMP and the prior's counts), where the copy is what the new code avoids."""
import importlib.util, sys
from pathlib import Path
import pytest, torch
from vlprune_nb import data, families, pruning

SPARSITIES = (0.63, 0.75, 0.9)

def concat_lowest(scores: dict, k: int) -> dict:
    "name -> bool marks of the k lowest over the concatenation of `scores` (the former global_threshold, negated)."
    flat = torch.cat([s.reshape(-1).float() for s in scores.values()])
    return dict(zip(scores, (p.view(s.shape) for p, s in zip(pruning.lowest_k(flat, k).split([s.numel() for s in scores.values()]), scores.values()))))

def concat_prior_counts(records, weights: dict, sparsity: float) -> dict:
    "The former prior_counts: a float copy of each modality's |W|, `lowest_k` over it, counted per tensor."
    groups = {}
    for r in records: groups.setdefault(r.modality, []).append(r.name)
    k_m = pruning.apportion({m: sum(weights[n].numel() for n in ns) for m, ns in groups.items()}, sparsity)
    out = {}
    for m, ns in groups.items():
        marks = concat_lowest({n: weights[n].detach().abs() for n in ns}, k_m[m])
        out.update({n: int(marks[n].sum()) for n in ns})
    return out

@pytest.fixture(scope="module", params=["blip", "xvlm", "clip", "vit"])
def shipped(request):
    torch.manual_seed(0)
    model = families.load(request.param)
    return model, data.calibration_batches(model, 2, 8)

@pytest.mark.parametrize("method", ["omp", "lamp", "l2norm", "multiflow_global"])
def test_global_threshold_masks_unchanged(shipped, method):
    model, calib = shipped
    sc = pruning.scores(model, method, calib if pruning.METHODS[method].needs_calibration else None)
    for s in SPARSITIES:
        want = concat_lowest(sc, pruning.n_pruned(s, sum(t.numel() for t in sc.values())))
        got = pruning.prune(model, method, s, calib if pruning.METHODS[method].needs_calibration else None).masks
        assert all(torch.equal(got[n], ~want[n]) for n in sc), (method, s)

@pytest.mark.parametrize("method", ["multiflow", "multiflow_edges", "multiflow_nodes"])
def test_modality_prior_masks_unchanged(shipped, method):
    model, calib = shipped
    sc, records = pruning.scores(model, method, calib), families.prunable(model)
    weights = {r.name: model.get_parameter(r.name) for r in records}
    for s in SPARSITIES:
        counts = concat_prior_counts(records, weights, s)
        assert pruning.prior_counts(records, weights, s) == counts
        got = pruning.prune(model, method, s, calib).masks
        assert all(torch.equal(got[n], ~pruning.lowest_k(sc[n], counts[n])) for n in sc), (method, s)

def test_base_size_blip():
    "BLIP-base with random weights (benchmarks/scale.py's builder): OMP's masks and the prior's counts as before."
    spec = importlib.util.spec_from_file_location("scale", Path(__file__).parents[1] / "benchmarks" / "scale.py")
    scale = importlib.util.module_from_spec(spec); spec.loader.exec_module(scale)
    model = scale.build("blip", "base")
    records = families.prunable(model)
    weights = {r.name: model.get_parameter(r.name) for r in records}
    assert sum(w.numel() for w in weights.values()) > 200e6
    mags = {n: w.detach().abs() for n, w in weights.items()}
    for s in SPARSITIES:
        assert pruning.prior_counts(records, weights, s) == concat_prior_counts(records, weights, s), s
        want = concat_lowest(mags, pruning.n_pruned(s, sum(t.numel() for t in mags.values())))
        got = pruning.global_threshold(mags, s)
        assert all(torch.equal(got[n], ~want[n]) for n in mags), s
        del want, got
