"""One real UPop search + retrain on the shipped BLIP checkpoint (retrieval), with a small step budget.

Prints the retrieval metrics of the extracted model right after the search (search only) and after retraining,
next to the dense model fine-tuned with the same retrain budget, and the params/FLOPs of both; the last line is
one JSON object.

    python benchmarks/structured_search_retrain.py [--ratio 2] [--search-steps 100] [--retrain-steps 100]
                                                   [--batch-size 32] [--eval-limit 200] [--no-dense]
"""
import argparse, json, time, warnings

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=2)
    ap.add_argument("--method", default="upop")
    ap.add_argument("--search-steps", type=int, default=100)
    ap.add_argument("--retrain-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-limit", type=int, default=200, help="test images evaluated (5 captions each)")
    ap.add_argument("--no-dense", action="store_true", help="skip the dense fine-tuning reference")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from vlprune_nb.families import load
    from vlprune_nb.tasks import task_model, finetune, evaluate
    from vlprune_nb.structured import search, extract, retrain, count_params, count_flops, retained_proportions

    task, t0 = "retrieval", time.time()
    base = load("blip")
    out = {"model": "blip", "task": task, "ratio": args.ratio, "method": args.method, "search_steps": args.search_steps,
           "retrain_steps": args.retrain_steps, "batch_size": args.batch_size, "eval_images": args.eval_limit}
    dense = task_model(base, task)
    out["dense"] = {"params": count_params(dense), "flops": count_flops(dense, task),
                    "zero_shot": evaluate(dense, task, limit=args.eval_limit, progress=False)}
    if not args.no_dense:
        ft = finetune(base, task, steps=args.retrain_steps, batch_size=args.batch_size, progress=False)
        out["dense"]["finetuned"] = evaluate(ft, task, limit=args.eval_limit, progress=False)
    print("dense", out["dense"], f"{time.time() - t0:.0f}s", flush=True)
    structure, searched = search(base, task, args.ratio, args.method, steps=args.search_steps,
                                 batch_size=args.batch_size, progress=False)
    small = extract(searched, structure)
    comps = {}
    for r in retained_proportions(structure):
        c = comps.setdefault(r["component"], [0, 0]); c[0] += r["kept"]; c[1] += r["total"]
    out["extracted"] = {"params": count_params(small), "flops": count_flops(small, task),
                        "pruned_mass": round(structure["pruned_mass"], 4),
                        "retained_by_component": {k: round(a / b, 3) for k, (a, b) in comps.items()},
                        "search_loss_first_last": [structure["loss_first"], structure["loss_last"]],
                        "search_only": evaluate(small, task, limit=args.eval_limit, progress=False)}
    print("search only", out["extracted"], f"{time.time() - t0:.0f}s", flush=True)
    small = retrain(small, task, steps=args.retrain_steps, batch_size=args.batch_size, progress=False)
    out["extracted"]["retrained"] = evaluate(small, task, limit=args.eval_limit, progress=False)
    out["params_ratio"] = round(out["extracted"]["params"] / out["dense"]["params"], 4)
    out["flops_ratio"] = round(out["extracted"]["flops"] / out["dense"]["flops"], 4)
    out["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
