"""Golden outputs of the training loops, pruning methods, task models and evaluators on the shipped checkpoints.

Each case stores what an exact comparison needs (sha256 digests of weights, masks and kept units) and what a
comparison across CPU kernels needs: a *sketch* of every tensor dict (its norm and K fixed random projections,
float64), kept counts, and the metrics. Floats are bit-identical only on the same kernels (torch's CPU
capability, oneDNN's ISA, the exact CPU), so a capture is exact evidence only on a machine with its
*fingerprint*; elsewhere tests/test_golden.py compares within the tolerances of `tolerances.json`, measured by
`python tests/golden/capture.py tolerances golden.json tolerances.json` from two captures made on different kernels.

    python tests/golden/capture.py capture OUT.json --commit C   # this machine's capture, added to OUT.json
    python tests/golden/capture.py tolerances GOLDEN.json OUT.json  # tolerances from its first two captures

A second kernel set on one machine: start the capture with ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41
(torch's and oneDNN's oldest kernels)."""
import argparse, hashlib, json, math, sys, tempfile, zlib
from pathlib import Path
import torch

from vlprune_nb import families, tasks, pruning, structured, pretrain
from vlprune_nb.config import machine_fingerprint
from vlprune_nb.data import calibration_batches

K = 8                                   # random projections per sketch
# Methods whose masks move on other kernels: the gradient methods (backward passes, CHITA's refit, TAMT's training),
# and multiflow_nodes, whose score I_out(i)·I_in(j) is equal along a whole row and column, so that float noise in the
# activations reorders near-ties (measured: its XVLM masks differ between AVX2 and DEFAULT kernels). Every other
# method's masks must stay bit-identical on any kernels: they come from the weights alone, or (MULTIFLOW's flow
# score) were identical on every pair of kernels measured.
FLOAT_SENSITIVE_MASKS = ("snip", "itersnip", "chita", "chita++", "tamt", "multiflow_nodes")
WEIGHTS_FACTOR, FLIPS_FACTOR, FLIPS_FLOOR = 10, 3, 1e-3   # safety factors over the largest difference measured

def digest(tensors: dict) -> str:
    "sha256 over (name, dtype, bytes) of tensors in name order."
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().reshape(-1).contiguous()
        h.update(k.encode()); h.update(str(t.dtype).encode()); h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()

def sketch(tensors: dict) -> list[float]:
    """[‖all‖, p_1 … p_K]: the norm of the tensors together and K projections on fixed standard-normal vectors (one
    generator per tensor, seeded by its name), in float64; bool tensors count as ±1. Two tensor dicts at distance d
    give projections whose difference has expected norm √K·d."""
    norm2, proj = 0.0, torch.zeros(K, dtype=torch.float64)
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().reshape(-1)
        t = (t.double() * 2 - 1) if t.dtype == torch.bool else t.double()
        g = torch.Generator().manual_seed(zlib.crc32(k.encode()))
        proj += torch.randn(K, t.numel(), generator=g, dtype=torch.float64) @ t      # (K, n) @ (n,) → (K,)
        norm2 += float(t @ t)
    return [math.sqrt(norm2), *proj.tolist()]

def tensors_entry(tensors: dict) -> dict: return {"sha256": digest(tensors), "sketch": sketch(tensors)}

def masks_entry(masks: dict) -> dict:
    return {**tensors_entry(masks), "kept": int(sum(int(m.sum()) for m in masks.values())),
            "numel": int(sum(m.numel() for m in masks.values()))}

FINETUNE = [("blip", t) for t in ("retrieval", "captioning", "vqa", "nlvr")] + \
           [("xvlm", t) for t in ("retrieval", "captioning", "vqa", "nlvr")] + [("clip", "retrieval"), ("vit", "classification")]
STRUCTURED = [("blip", "retrieval", "upop"), ("xvlm", "nlvr", "unified"), ("vit", "classification", "upop"),
              ("clip", "retrieval", "mask_based")]

def finetune_case(fam: str, task: str, steps: int = 3, lr: float | None = None) -> dict:
    "OMP 50 % masks, `steps` fine-tuning steps at batch size 8, evaluation on 16 test items."
    m = families.load(fam)
    masks = pruning.prune(m, "omp", 0.5)
    tm = tasks.finetune(m, task, masks=dict(masks), steps=steps, batch_size=8, progress=False, **({"lr": lr} if lr else {}))
    metrics = tasks.evaluate(tm, task, limit=16, progress=False)
    metrics.pop("eval_s")
    return {"weights": tensors_entry(tm.state_dict()), "metrics": metrics}

def finetune_cases(out: dict):
    for fam, task in FINETUNE: out[f"finetune/{fam}/{task}"] = finetune_case(fam, task)

# The two papers' methods, whose masks were captured before the refactor. Not `pruning.METHODS`: importing
# vlprune_nb.field (any earlier test may) registers the field's methods there, whose N:M patterns cannot prune at the
# cases' 0.6; they have their own tests (nbs/11_field.ipynb, tests/test_field_peer.py).
PAPER_METHODS = ("random", "omp", "local_mp", "l2norm", "lamp", "multiflow", "multiflow_edges", "multiflow_nodes",
                 "multiflow_inverted", "multiflow_global", "snip", "itersnip", "chita", "chita++", "tamt")

def pruning_cases(out: dict, methods=PAPER_METHODS):
    for fam in ("blip", "xvlm", "clip", "vit"):
        m = families.load(fam)
        calib = calibration_batches(m, 2, 4, seed=3)
        for method in methods:
            res = pruning.prune(m, method, 0.6, calib, seed=1)
            out[f"prune/{fam}/{method}"] = {"masks": masks_entry(dict(res)),
                                            "weights": tensors_entry(res.weights) if res.weights else None}

def structured_cases(out: dict):
    for fam, task, method in STRUCTURED:
        m = families.load(fam)
        structure, searched = structured.search(m, task, 2, method, steps=4, interval=2, batch_size=8, progress=False)
        small = structured.extract(searched, structure)
        small = structured.retrain(small, task, steps=2, batch_size=8, progress=False)
        metrics = tasks.evaluate(small, task, limit=16, progress=False); metrics.pop("eval_s")
        kept = {k: torch.tensor(v["kept"]) for k, v in structure["modules"].items()}
        out[f"structured/{fam}/{task}/{method}"] = {
            "kept": {"sha256": digest(kept), "counts": {k: int(v.numel()) for k, v in sorted(kept.items())}},
            "weights": tensors_entry(small.state_dict()), "metrics": metrics}

def pretrain_cases(out: dict):
    for fam in ("blip", "vit"):
        with tempfile.TemporaryDirectory() as d:
            p = pretrain.pretrain(fam, steps=3, out_dir=f"{d}/{fam}", batch_size=8)
            out[f"pretrain/{fam}"] = {"weights": tensors_entry(families.load(p).state_dict())}

CASES = (finetune_cases, pruning_cases, structured_cases, pretrain_cases)

def compute_all(progress=None) -> dict:
    "Every case on one torch thread (as the records ran)."
    torch.set_num_threads(1)
    out = {}
    for fn in CASES:
        fn(out)
        if progress: progress(fn.__name__)
    return out

# --- comparing two captures --------------------------------------------------------------------------------------

def weights_difference(now: list, gold: list) -> float:
    "Estimated ‖W_now − W_gold‖ / ‖W_gold‖ from two sketches."
    d = math.sqrt(sum((a - b) ** 2 for a, b in zip(now[1:], gold[1:])) / K)
    return d / gold[0] if gold[0] else d

def flipped_fraction(now: dict, gold: dict) -> float:
    "Estimated fraction of mask entries that differ, from two mask sketches (±1 entries: each flip moves a projection by 2r)."
    d2 = sum((a - b) ** 2 for a, b in zip(now["sketch"][1:], gold["sketch"][1:])) / K
    return d2 / 4 / gold["numel"]

def metric_differences(now: dict, gold: dict) -> dict[str, float]:
    "|now − gold| of every numeric metric; a string metric (caption examples) that differs counts as inf."
    out = {}
    for k, v in gold.items():
        if isinstance(v, bool) or k == "n": continue
        if isinstance(v, (int, float)): out[k] = abs(float(now.get(k, math.inf)) - v)
    return out

def differences(now: dict, gold: dict) -> dict[str, dict[str, float]]:
    """What a cross-machine comparison measures, per case: `weights` (relative distance), `masks` (flipped
    fraction), `kept` (units kept differently, counted), `metrics` (largest absolute difference by metric name),
    and `exact` — the names of fields whose digest must match on any kernels (masks of gradient-free methods,
    integer counts) and does not."""
    out = {}
    for case, g in gold.items():
        n, d = now[case], {}
        if g.get("weights"): d["weights"] = weights_difference(n["weights"]["sketch"], g["weights"]["sketch"])
        if "masks" in g:
            method = case.split("/")[2]
            if method in FLOAT_SENSITIVE_MASKS: d["masks"] = flipped_fraction(n["masks"], g["masks"])
            elif n["masks"]["sha256"] != g["masks"]["sha256"]: d.setdefault("exact", []).append("masks")
            if n["masks"]["kept"] != g["masks"]["kept"]: d.setdefault("exact", []).append("kept count")
        if "kept" in g:
            if n["kept"]["counts"] != g["kept"]["counts"]: d.setdefault("exact", []).append("kept counts")
        if "metrics" in g: d["metrics"] = metric_differences(n["metrics"], g["metrics"])
        out[case] = d
    return out

def weights_kind(case: str) -> str:
    "Which weights tolerance a case's weights take: CHITA's refit (a solve on noisy gradients), or trained weights."
    return "chita" if case.startswith("prune/") else "trained"

def measure_tolerances(a: dict, b: dict) -> dict:
    """Tolerances from two captures on different kernels: per weights kind and per float-sensitive method, the largest
    difference seen, the case, the safety factor and the tolerance (a floor where nothing moved); metrics allow one
    test item; every other field must be exact (and was, or this raises)."""
    diffs = differences(a["cases"], b["cases"])
    broken = {c: d["exact"] for c, d in diffs.items() if d.get("exact")}
    if broken: raise ValueError(f"fields expected exact differ between the captures: {broken}")
    out = {"weights": {}, "mask_flips": {}}
    for case, d in diffs.items():
        if "weights" in d:
            w = out["weights"].setdefault(weights_kind(case), {"max_seen": 0.0, "case": case})
            if d["weights"] >= w["max_seen"]: w.update(max_seen=d["weights"], case=case)
        if "masks" in d:
            m = out["mask_flips"].setdefault(case.split("/")[2], {"max_seen": 0.0, "case": case})
            if d["masks"] >= m["max_seen"]: m.update(max_seen=d["masks"], case=case)
    for w in out["weights"].values(): w.update(factor=WEIGHTS_FACTOR, tol=WEIGHTS_FACTOR * w["max_seen"])
    for m in out["mask_flips"].values(): m.update(factor=FLIPS_FACTOR, floor=FLIPS_FLOOR, tol=max(FLIPS_FACTOR * m["max_seen"], FLIPS_FLOOR))
    return out

def metric_tolerance(name: str, n: int) -> float:
    "One test item's worth of `name` on n items: 100/n points (CIDEr, whose scale is ten times larger: 1000/n)."
    return (1000 if name == "CIDEr" else 100) / n + 1e-9

def check_case(case: str, now: dict, gold: dict, tol: dict) -> list[str]:
    "Why `now` is not `gold` within the cross-machine tolerances `tol` (empty when it is)."
    d = differences({case: now}, {case: gold})[case]
    why = [f"{f} differ (must be exact on any kernels)" for f in d.get("exact", [])]
    if "weights" in d and d["weights"] > (t := tol["weights"][weights_kind(case)]["tol"]):
        why.append(f"weights differ by {d['weights']:.2e} (relative), tolerance {t:.2e}")
    if "masks" in d and d["masks"] > (t := tol["mask_flips"][case.split("/")[2]]["tol"]):
        why.append(f"{d['masks']:.2%} of mask entries differ, tolerance {t:.2%}")
    for name, v in d.get("metrics", {}).items():
        if v > (t := metric_tolerance(name, gold["metrics"]["n"])):
            why.append(f"{name} differs by {v:.2f}, tolerance {t:.2f} (one of {gold['metrics']['n']} test items)")
    return why

def fingerprint_key(fp: dict) -> str: return json.dumps(fp, sort_keys=True)

def add_capture(path: Path, capture: dict) -> dict:
    "The golden file at `path` with `capture` in place of any earlier capture of the same fingerprint."
    captures = json.loads(path.read_text())["captures"] if path.is_file() else []
    keep = [c for c in captures if fingerprint_key(c["fingerprint"]) != fingerprint_key(capture["fingerprint"])]
    return {"captures": keep + [capture]}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="compute every case here and add it to OUT as this machine's capture")
    c.add_argument("out", type=Path); c.add_argument("--commit", required=True, help="the commit of the package captured")
    t = sub.add_parser("tolerances", help="write the tolerances measured between the captures of GOLDEN to OUT")
    t.add_argument("golden", type=Path); t.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "capture":
        cases = compute_all(lambda name: print(name, "done", file=sys.stderr, flush=True))
        capture = {"fingerprint": machine_fingerprint(), "commit": args.commit, "cases": cases}
        args.out.write_text(json.dumps(add_capture(args.out, capture), indent=1, sort_keys=True) + "\n")
    else:
        a, b = json.loads(args.golden.read_text())["captures"][:2]
        tol = {"why": "measured between the captures of `between` (the first is the reference of cross-machine mode); "
                      "tol = factor × max_seen (mask flips: at least the floor); metrics: one test item "
                      "(capture.metric_tolerance)", "between": [a["fingerprint"], b["fingerprint"]],
               **measure_tolerances(a, b)}
        args.out.write_text(json.dumps(tol, indent=1, sort_keys=True) + "\n")
        print(json.dumps(tol, indent=1, sort_keys=True))

if __name__ == "__main__":
    main()
