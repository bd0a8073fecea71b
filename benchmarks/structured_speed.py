"""Speed of UPop-extracted BLIP retrieval models against the dense one, on the CPU.

For each compression ratio: a short UPop search on the shipped BLIP checkpoint (retrieval loss), extraction,
then parameters, FLOPs (FlopCounterMode on the declared retrieval inference input: ITC features of image and
text plus the ITM head on the pair) and measured latency (median of repeated forwards, timed alternately with the
dense model so that load on the machine hits both alike) at batch 1 and 32. The last line printed is one JSON
object; `speedup_over_flop_reduction` = (dense latency / extracted latency) / (dense FLOPs / extracted FLOPs),
the goal being >= 0.8.

    python benchmarks/structured_speed.py [--ratios 2 4] [--steps 20] [--repeats 30] [--threads 1]
"""
import argparse, json, statistics, time, warnings

import torch


def timed_pair(models: dict, task: str, batch_size: int, repeats: int, warmup: int = 3) -> dict:
    "Median latency (s) of each model, with the models' runs interleaved."
    from vlprune_nb.structured import example_inputs, inference_forward
    xs = {k: example_inputs(m, task, batch_size) for k, m in models.items()}
    times = {k: [] for k in models}
    with torch.no_grad():
        for i in range(warmup + repeats):
            for k, m in models.items():
                t0 = time.perf_counter(); inference_forward(m, task, xs[k]); dt = time.perf_counter() - t0
                if i >= warmup: times[k].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=float, nargs="+", default=[2, 4])
    ap.add_argument("--steps", type=int, default=20, help="UPop search steps (the structure, not its quality, matters here)")
    ap.add_argument("--batch-size", type=int, default=16, help="search batch size")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from vlprune_nb.families import load
    from vlprune_nb.tasks import task_model
    from vlprune_nb.structured import search, extract, count_params, count_flops

    task = "retrieval"
    base = load("blip")
    dense = task_model(base, task).eval()
    out = {"model": "blip", "task": task, "threads": args.threads, "search_steps": args.steps,
           "dense": {"params": count_params(dense), "flops_b1": count_flops(dense, task, 1),
                     "flops_b32": count_flops(dense, task, 32)}, "ratios": {}}
    for r in args.ratios:
        structure, searched = search(base, task, r, steps=args.steps, batch_size=args.batch_size, progress=False)
        small = extract(searched, structure)
        rec = {"pruned_mass": round(structure["pruned_mass"], 4), "params": count_params(small),
               "flops_b1": count_flops(small, task, 1), "flops_b32": count_flops(small, task, 32)}
        rec["params_ratio"] = round(rec["params"] / out["dense"]["params"], 4)
        for b in (1, 32):
            rec[f"flops_ratio_b{b}"] = round(rec[f"flops_b{b}"] / out["dense"][f"flops_b{b}"], 4)
            lat = timed_pair({"dense": dense, "small": small}, task, b, args.repeats if b == 1 else max(5, args.repeats // 3))
            rec[f"latency_ms_b{b}"] = {k: round(1000 * v, 3) for k, v in lat.items()}
            rec[f"latency_ratio_b{b}"] = round(lat["small"] / lat["dense"], 4)
            rec[f"speedup_over_flop_reduction_b{b}"] = round((lat["dense"] / lat["small"]) / (1 / rec[f"flops_ratio_b{b}"]), 3)
        out["ratios"][f"{r:g}x"] = rec
        print(f"{r:g}x: params {rec['params_ratio']}, FLOPs {rec['flops_ratio_b1']}, latency b1 {rec['latency_ratio_b1']}, "
              f"b32 {rec['latency_ratio_b32']}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
