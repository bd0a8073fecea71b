"""Speed of UPop-extracted BLIP retrieval models against the dense one, on the CPU.

For each compression ratio: a short UPop search on the shipped BLIP checkpoint (retrieval loss), extraction,
then parameters, FLOPs (FlopCounterMode on the declared retrieval inference input: ITC features of image and
text plus the ITM head on the pair) and measured latency (median of repeated forwards, timed alternately with the
dense model so that load on the machine hits both alike) at batch 1 and 32. The last line printed is one JSON
object; `speedup_over_flop_reduction` = (dense latency / extracted latency) / (dense FLOPs / extracted FLOPs),
the goal being >= 0.8.

Tiny models are overhead-bound on the declared input (16 text tokens), so two workloads closer to real use are
measured the same way, each with its own FLOP count: the retrieval ITM re-ranking pass (`--itm-batch` image–text
pairs through the cross-attention text encoder, image tokens computed beforehand, as `tasks.eval_retrieval` does
in chunks of 256), and a whole retrieval evaluation on `--eval-images` test images (ITC features, ITM
re-ranking of the top `itm_k`; FLOPs counted over the whole evaluation). `--text-len` sets the text length of the
declared input and of the ITM pass (the processor pads to at most 32).

    python benchmarks/structured_speed.py [--ratios 2 4] [--steps 20] [--repeats 30] [--threads 1]
                                          [--text-len 16] [--itm-batch 256] [--eval-images 100]
"""
import argparse, json, warnings

import torch


def timed_pair(models: dict, task: str, batch_size: int, repeats: int, warmup: int = 3, text_len: int = 16) -> dict:
    "Median latency (s) of each model's inference forward on the declared input, with the models' runs interleaved."
    from vlprune_nb.structured import example_inputs, inference_forward, median_times
    xs = {k: example_inputs(m, task, batch_size, text_len=text_len) for k, m in models.items()}
    return median_times({k: (lambda m=m, x=xs[k]: inference_forward(m, task, x)) for k, m in models.items()}, repeats, warmup)


def compare(calls: dict, repeats: int, warmup: int = 1) -> dict:
    "FLOPs and interleaved latency of {'dense': f, 'small': f}, with the ratios and speed-up over FLOP reduction."
    from vlprune_nb.structured import flops_of, median_times
    fl = {k: flops_of(f) for k, f in calls.items()}
    lat = median_times(calls, repeats, warmup)
    return {"flops": fl, "latency_ms": {k: round(1000 * v, 3) for k, v in lat.items()},
            "flops_ratio": round(fl["small"] / fl["dense"], 4), "latency_ratio": round(lat["small"] / lat["dense"], 4),
            "speedup_over_flop_reduction": round((lat["dense"] / lat["small"]) / (fl["dense"] / fl["small"]), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=float, nargs="+", default=[2, 4])
    ap.add_argument("--steps", type=int, default=20, help="UPop search steps (the structure, not its quality, matters here)")
    ap.add_argument("--batch-size", type=int, default=16, help="search batch size")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--text-len", type=int, default=16, help="text tokens of the declared input and of the ITM pass")
    ap.add_argument("--itm-batch", type=int, default=256, help="image-text pairs of the ITM pass (0: skip)")
    ap.add_argument("--eval-images", type=int, default=100, help="test images of the timed retrieval evaluation (0: skip)")
    ap.add_argument("--eval-repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from vlprune_nb.families import load
    from vlprune_nb.tasks import task_model, evaluate
    from vlprune_nb.structured import search, extract, count_params, count_flops, example_inputs

    task = "retrieval"
    base = load("blip")
    dense = task_model(base, task).eval()
    out = {"model": "blip", "task": task, "threads": args.threads, "search_steps": args.steps, "text_len": args.text_len,
           "itm_batch": args.itm_batch, "eval_images": args.eval_images,
           "dense": {"params": count_params(dense), "flops_b1": count_flops(dense, task, 1, text_len=args.text_len),
                     "flops_b32": count_flops(dense, task, 32, text_len=args.text_len)}, "ratios": {}}
    for r in args.ratios:
        structure, searched = search(base, task, r, steps=args.steps, batch_size=args.batch_size, progress=False)
        small = extract(searched, structure)
        rec = {"pruned_mass": round(structure["pruned_mass"], 4), "params": count_params(small),
               "flops_b1": count_flops(small, task, 1, text_len=args.text_len),
               "flops_b32": count_flops(small, task, 32, text_len=args.text_len)}
        rec["params_ratio"] = round(rec["params"] / out["dense"]["params"], 4)
        for b in (1, 32):
            rec[f"flops_ratio_b{b}"] = round(rec[f"flops_b{b}"] / out["dense"][f"flops_b{b}"], 4)
            lat = timed_pair({"dense": dense, "small": small}, task, b, args.repeats if b == 1 else max(5, args.repeats // 3),
                             text_len=args.text_len)
            rec[f"latency_ms_b{b}"] = {k: round(1000 * v, 3) for k, v in lat.items()}
            rec[f"latency_ratio_b{b}"] = round(lat["small"] / lat["dense"], 4)
            rec[f"speedup_over_flop_reduction_b{b}"] = round((lat["dense"] / lat["small"]) / (1 / rec[f"flops_ratio_b{b}"]), 3)
        models = {"dense": dense, "small": small}
        if args.itm_batch:
            x = example_inputs(dense, task, args.itm_batch, text_len=args.text_len)
            with torch.no_grad(): img = {k: m.image_embeds(x["pixel_values"]) for k, m in models.items()}
            rec["itm"] = compare({k: (lambda m=m, e=img[k]: m.itm_logits(x["input_ids"], x["attention_mask"], e))
                                  for k, m in models.items()}, max(5, args.repeats // 3))
        if args.eval_images:
            rec["eval"] = compare({k: (lambda m=m: evaluate(m, task, limit=args.eval_images, progress=False))
                                   for k, m in models.items()}, args.eval_repeats, warmup=0)
        out["ratios"][f"{r:g}x"] = rec
        print(f"{r:g}x: params {rec['params_ratio']}, FLOPs {rec['flops_ratio_b1']}, latency b1 {rec['latency_ratio_b1']}, "
              f"b32 {rec['latency_ratio_b32']}; speed-up/FLOP reduction b1 {rec['speedup_over_flop_reduction_b1']}, "
              f"b32 {rec['speedup_over_flop_reduction_b32']}"
              + "".join(f", {m} {rec[m]['speedup_over_flop_reduction']} (FLOPs {rec[m]['flops_ratio']}, latency {rec[m]['latency_ratio']})"
                        for m in ("itm", "eval") if m in rec), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
