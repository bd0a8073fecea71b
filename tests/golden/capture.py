"""Golden outputs of the training loops, pruning methods, task models and evaluators on the shipped checkpoints.

`python tests/golden/capture.py OUT.json` writes them; tests/test_golden.py recomputes and compares them. The file
tests/golden/golden.json was written by this script at commit 34b18e6 (before the family protocol and the
accelerate loop), so the test shows that refactors give the same weights, masks and metrics bit for bit."""
import hashlib, json, sys, tempfile
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

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {}
    for fn in (finetune_cases, pruning_cases, structured_cases, pretrain_cases):
        fn(out); print(fn.__name__, "done", file=sys.stderr, flush=True)
    json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True)
