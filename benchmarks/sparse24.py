"""2:4 sparsity at inference: BLIP-base-sized Linear layers and a BLIP-base-sized model, dense against 2:4 through
`torch.sparse.to_sparse_semi_structured`, with unstructured 50 % as torch.sparse CSR beside it.

1. Per layer: the four Linear shapes of a ViT-B / BERT-base block (qkv or q, attention output, fc1, fc2) on
   `--tokens` input rows (default 8 images × 577 tokens: BLIP's ViT-B/16 at 384 px), weights pruned 2:4 along the
   input dimension by magnitude (`field.nm_keep`), and 50 % unstructured per row for CSR. Median latency of
   `--repeats` interleaved runs; the outputs of each sparse form checked against the dense product of the same
   pruned weight.
2. End to end: transformers' `BlipForImageTextRetrieval` at its default (base) configuration, every Linear of the
   vision and text encoders pruned 2:4, its ITM forward (`--batch` images and their captions) dense against the
   same model with semi-structured weights.

The 2:4 kernels (cuSPARSELt, CUTLASS) exist only on CUDA GPUs of compute capability 8.0 and above, in float16 /
bfloat16 / int8. On any other device the script says so — the message PyTorch gives included — and reports the
dense and CSR figures alone. Figures on stdout, the last line one JSON object, also written to `--out`.

    python benchmarks/sparse24.py [--quick] [--device cuda] [--repeats 30] [--tokens 4616] [--batch 8] [--out FILE]
"""
from __future__ import annotations
import argparse, json, platform, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_LAYERS = {"qkv": (768, 2304), "attn_out": (768, 768), "fc1": (768, 3072), "fc2": (3072, 768)}   # name → (d_in, d_out)
QUICK_LAYERS = {"qkv": (128, 384), "attn_out": (128, 128), "fc1": (128, 512), "fc2": (512, 128)}


def log(*a): print(*a, file=sys.stderr, flush=True)


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def median_ms(calls: dict, repeats: int, device, warmup: int = 3) -> dict:
    "Median wall time (ms) of each zero-argument call, the calls interleaved so that a load on the machine hits them alike."
    times = {k: [] for k in calls}
    with torch.no_grad():
        for i in range(warmup + repeats):
            for k, f in calls.items():
                sync(device); t0 = time.perf_counter(); f(); sync(device)
                if i >= warmup: times[k].append(1000 * (time.perf_counter() - t0))
    return {k: round(statistics.median(v), 4) for k, v in times.items()}


def semi_structured_support(device, dtype) -> tuple[bool, str]:
    "(whether a 2:4 kernel runs here, why not): tried on a small 2:4 matrix so that the reason is PyTorch's own."
    from torch.sparse import to_sparse_semi_structured
    if device.type != "cuda":
        try:
            to_sparse_semi_structured(torch.tensor([[1., 1., 0., 0.]] * 64).repeat(1, 32).to(device, dtype))
            pytorch_says = "it did not refuse"
        except Exception as e:                                 # the refusal is the finding
            pytorch_says = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
        return False, (f"no 2:4 sparse kernel exists on {device.type.upper()}: torch.sparse.to_sparse_semi_structured runs "
                       f"on CUDA GPUs of compute capability 8.0+ only (cuSPARSELt / CUTLASS); PyTorch here says: {pytorch_says}")
    cap = torch.cuda.get_device_capability(device)
    if cap < (8, 0): return False, f"no 2:4 sparse kernel on this GPU: compute capability {cap[0]}.{cap[1]} < 8.0"
    return True, ""


def pruned_24(w: torch.Tensor) -> torch.Tensor:
    "`w` with the 2 smallest |w| of every 4 along the input dimension zeroed."
    from vlprune_nb.field import nm_keep
    return w * nm_keep(w.abs().float(), 2, 4).to(w.dtype)


def pruned_rows(w: torch.Tensor, sparsity: float = 0.5) -> torch.Tensor:
    "`w` with the ⌊s·d_in⌋ smallest |w| of each row zeroed (unstructured, per row)."
    from vlprune_nb.field import keep_lowest
    return w * keep_lowest(w.abs().float(), int(sparsity * w.numel()), rows=True).to(w.dtype)


def layers(args, device, dtype, kernel: bool) -> dict:
    "Item 1: per-layer latency and agreement, dense against 2:4 (when a kernel exists) and 50 % CSR."
    from torch.sparse import to_sparse_semi_structured
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, (d_in, d_out) in (QUICK_LAYERS if args.quick else BASE_LAYERS).items():
        w = (torch.randn(d_out, d_in, generator=g) / d_in ** 0.5).to(device, dtype)
        x = torch.randn(args.tokens, d_in, generator=g).to(device, dtype)
        w24, wu = pruned_24(w), pruned_rows(w)
        csr = wu.float().to_sparse_csr() if device.type == "cpu" else wu.to_sparse_csr()
        xc = x.float() if device.type == "cpu" else x
        calls = {"dense": lambda: F.linear(x, w24), "csr_50": lambda: (csr @ xc.T).T}
        rec = {"d_in": d_in, "d_out": d_out, "tokens": args.tokens}
        rec["csr_max_abs_diff"] = float(((csr @ xc.T).T - F.linear(xc, wu.to(xc.dtype))).abs().max())
        if kernel:
            ws = to_sparse_semi_structured(w24)
            calls["sparse24"] = lambda: F.linear(x, ws)
            rec["sparse24_max_abs_diff"] = float((F.linear(x, ws) - F.linear(x, w24)).abs().max())
        rec["ms"] = median_ms(calls, args.repeats, device)
        rec["speedup"] = {k: round(rec["ms"]["dense"] / v, 3) for k, v in rec["ms"].items() if k != "dense"}
        log(f"[1] {name} {d_in}→{d_out} × {args.tokens}: {rec['ms']}")
        out[name] = rec
    return out


def blip(args):
    "BlipForImageTextRetrieval at transformers' default (base) configuration, or a small one with --quick."
    from transformers import BlipConfig, BlipForImageTextRetrieval
    if args.quick:
        small = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4)
        cfg = BlipConfig(text_config=dict(**small, encoder_hidden_size=128, vocab_size=1000),
                         vision_config=dict(**small, image_size=64, patch_size=16), image_text_hidden_size=64)
    else: cfg = BlipConfig()
    torch.manual_seed(0)
    return BlipForImageTextRetrieval(cfg).eval()


def end_to_end(args, device, dtype, kernel: bool) -> dict:
    "Item 2: the ITM forward of a BLIP-base-sized model, dense (2:4-pruned weights) against semi-structured weights."
    import copy
    from torch.sparse import to_sparse_semi_structured
    model = blip(args).to(device, dtype)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)
               and (".encoder." in f".{n}") and m.in_features % 4 == 0]
    with torch.no_grad():
        for _, m in linears: m.weight.copy_(pruned_24(m.weight))
    size = model.config.vision_config.image_size
    g = torch.Generator().manual_seed(1)
    px = torch.randn(args.batch, 3, size, size, generator=g).to(device, dtype)
    ids = torch.randint(0, model.config.text_config.vocab_size, (args.batch, 32), generator=g).to(device)
    run = lambda m: m(input_ids=ids, pixel_values=px, use_itm_head=True).itm_score
    rec = {"linears_2of4": len(linears), "params": sum(p.numel() for p in model.parameters()), "batch": args.batch,
           "image_size": size, "text_len": 32}
    calls = {"dense": lambda: run(model)}
    if kernel:
        sparse = copy.deepcopy(model)
        mods = dict(sparse.named_modules())
        for n, _ in linears: mods[n].weight = nn.Parameter(to_sparse_semi_structured(mods[n].weight.detach()))
        calls["sparse24"] = lambda: run(sparse)
        with torch.no_grad(): rec["sparse24_max_abs_diff"] = float((run(sparse) - run(model)).abs().max())
    rec["ms"] = median_ms(calls, max(3, args.repeats // 3), device)
    rec["speedup"] = {k: round(rec["ms"]["dense"] / v, 3) for k, v in rec["ms"].items() if k != "dense"}
    log(f"[2] BLIP ITM forward, batch {args.batch}: {rec['ms']}")
    return rec


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes and a small BLIP (for the test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=None, help="input rows of the per-layer products (default 4616; 64 with --quick)")
    ap.add_argument("--batch", type=int, default=None, help="image-text pairs of the end-to-end forward (default 8; 2 with --quick)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    args.tokens = args.tokens or (64 if args.quick else 8 * 577)
    args.batch = args.batch or (2 if args.quick else 8)
    if args.quick: args.repeats = min(args.repeats, 5)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    kernel, why_not = semi_structured_support(device, dtype)
    if not kernel: print(why_not, flush=True)
    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "quick": args.quick, "sparse24_kernel": kernel, "note": why_not or None,
           "layers": layers(args, device, dtype, kernel), "end_to_end": end_to_end(args, device, dtype, kernel)}
    line = json.dumps(res)
    if args.out: open(args.out, "w").write(line + "\n")
    print(line)
    return res


if __name__ == "__main__": main()
