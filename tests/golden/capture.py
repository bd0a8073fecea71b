"""Golden outputs of the training loops, pruning methods, task models and evaluators on the shipped checkpoints.

`python tests/golden/capture.py OUT.json [--commit C]` computes them with the vlprune_nb on the path and writes them
into OUT.json as this machine's capture, replacing an earlier capture of the same torch CPU capability (AVX2,
AVX512, ...): floats are bit-identical only on the same kernels, so each capability has its own capture.
tests/test_golden.py recomputes the cases and compares them with the capture of its capability. Both captures in
tests/golden/golden.json ran the package at commit 34b18e6 (before the family protocol and the accelerate loop), so
the test shows that refactors give the same weights, masks and metrics bit for bit: one on the machine of
2026-12-01, whose capability was not recorded (it is not AVX2: the AVX2 results differ), one on an AVX2 machine."""
import argparse, hashlib, json, sys, tempfile
from pathlib import Path
import torch

from vlprune_nb import families, tasks, pruning, structured, pretrain
from vlprune_nb.data import calibration_batches

def digest(tensors: dict) -> str:
    "sha256 over (name, bytes) of tensors in name order."
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().reshape(-1).contiguous()
        h.update(k.encode()); h.update(str(t.dtype).encode()); h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()

FINETUNE = [("blip", t) for t in ("retrieval", "captioning", "vqa", "nlvr")] + \
           [("xvlm", t) for t in ("retrieval", "captioning", "vqa", "nlvr")] + [("clip", "retrieval"), ("vit", "classification")]
STRUCTURED = [("blip", "retrieval", "upop"), ("xvlm", "nlvr", "unified"), ("vit", "classification", "upop"),
              ("clip", "retrieval", "mask_based")]

def finetune_cases(out: dict, quick: bool = False):
    for fam, task in FINETUNE:
        m = families.load(fam)
        masks = pruning.prune(m, "omp", 0.5)
        tm = tasks.finetune(m, task, masks=dict(masks), steps=3, batch_size=8, progress=False)
        metrics = tasks.evaluate(tm, task, limit=16, progress=False)
        metrics.pop("eval_s")
        out[f"finetune/{fam}/{task}"] = {"weights": digest(tm.state_dict()), "metrics": metrics}

def pruning_cases(out: dict, methods=None):
    for fam in ("blip", "xvlm", "clip", "vit"):
        m = families.load(fam)
        calib = calibration_batches(m, 2, 4, seed=3)
        for method in methods or pruning.METHODS:
            res = pruning.prune(m, method, 0.6, calib, seed=1)
            out[f"prune/{fam}/{method}"] = {"masks": digest(dict(res)),
                                            "weights": digest(res.weights) if res.weights else None}

def structured_cases(out: dict):
    for fam, task, method in STRUCTURED:
        m = families.load(fam)
        structure, searched = structured.search(m, task, 2, method, steps=4, interval=2, batch_size=8, progress=False)
        small = structured.extract(searched, structure)
        small = structured.retrain(small, task, steps=2, batch_size=8, progress=False)
        metrics = tasks.evaluate(small, task, limit=16, progress=False); metrics.pop("eval_s")
        kept = {k: torch.tensor(v["kept"]) for k, v in structure["modules"].items()}
        out[f"structured/{fam}/{task}/{method}"] = {"kept": digest(kept), "weights": digest(small.state_dict()),
                                                    "metrics": metrics}

def pretrain_cases(out: dict):
    for fam in ("blip", "vit"):
        with tempfile.TemporaryDirectory() as d:
            p = pretrain.pretrain(fam, steps=3, out_dir=f"{d}/{fam}", batch_size=8)
            m = families.load(p)
            out[f"pretrain/{fam}"] = {"weights": digest(m.state_dict())}

def add_capture(path: Path, capture: dict) -> dict:
    "The golden file at `path` with `capture` in place of any earlier capture of its CPU capability."
    captures = json.loads(path.read_text())["captures"] if path.is_file() else []
    keep = [c for c in captures if c["cpu_capability"] != capture["cpu_capability"]]
    return {"captures": keep + [capture]}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path); ap.add_argument("--commit", required=True, help="the commit of the package captured")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {}
    for fn in (finetune_cases, pruning_cases, structured_cases, pretrain_cases):
        fn(out); print(fn.__name__, "done", file=sys.stderr, flush=True)
    capture = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "commit": args.commit, "cases": out}
    args.out.write_text(json.dumps(add_capture(args.out, capture), indent=1, sort_keys=True) + "\n")
