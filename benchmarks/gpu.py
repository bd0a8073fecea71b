"""One command for a GPU: what pruning, fine-tuning and 2:4 sparsity cost and buy on one CUDA device.

    python benchmarks/gpu.py [--quick] [--device cuda|cpu] [--out FILE]

Sized to take under 8 minutes on one H100 (an estimate: no GPU has been lent to this project yet, so it has not run
there). Every part runs in this one process, one after the other; a part that fails (out of memory, a missing kernel)
is recorded under "errors" and the others still run (exit code 1 then).

1. Pruning cost: BLIP-base with random weights (`benchmarks/scale.py`'s `build`: ViT-B/16 at 224 px + the 12-layer
   MED, BERT-size vocabulary), `--batches` × `--batch-size` calibration pairs (default 500 × 32, scale.py's
   `calib_batches`, put on the device first): the family's calibration forward over the batches, MULTIFLOW and SNIP
   (`pruning.prune` at `--sparsity`), each timed with `torch.cuda.synchronize` after a warm-up forward; MULTIFLOW ÷
   forward and SNIP ÷ forward; the sparsity of the masks each method made.
2. Fine-tuning: `tasks.finetune(model, "retrieval", masks=<MULTIFLOW's>, device=..., mixed_precision="bf16")` of the
   same BLIP-base on the generated world's retrieval data, `--ft-steps` steps at `--ft-batch` (default settings.ini
   [tasks] batch_size); each optimizer step is timed by a global optimizer post-step hook (synchronised), and the
   seconds per step are the mean after `--ft-warmup` warm-up steps.
3. 2:4 speed-up: `benchmarks/sparse24.py`'s per-layer products and BLIP-base ITM forward, dense against
   `torch.sparse.to_sparse_semi_structured` (float16; CUDA compute capability 8.0+); with torchao installed (the
   optional GPU dependency) the same forward through `torchao.sparsity.sparsify_(…, semi_sparse_weight())` beside it.
4. Peak GPU memory (`torch.cuda.max_memory_allocated`, reset before each measurement) of every part; the
   calibration batches' own size is given beside the pruning peaks (they sit on the device throughout item 1).

`--quick` runs the same code on scale.py's quick models (2 × 4 pairs, 3 fine-tuning steps, sparse24's quick shapes)
on the CPU, for the test. Without `--quick` it needs a CUDA GPU and refuses otherwise, unless `--device cpu` is given
explicitly (the full sizes on a CPU take hours). Progress on stderr; the last stdout line is one JSON object, also
written to `--out` (default `data/user/benchmarks/gpu.json`, `gpu-quick.json` with `--quick`; ignored by git).
"""
from __future__ import annotations
import argparse, copy, json, platform, statistics, sys, time, traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path: sys.path.insert(0, p)

import scale, sparse24                                       # the model builders, calibration batches and 2:4 timings
from scale import log, sync

USER_OUT = scale.USER_OUT
FULL = dict(size="base", batches=500, batch_size=32, ft_steps=13, ft_warmup=3, tokens=8 * 577, batch=8, repeats=30)
QUICK = dict(size="quick", batches=2, batch_size=4, ft_steps=3, ft_warmup=1, ft_batch=4, tokens=64, batch=2, repeats=5)


def cuda(device) -> bool: return str(device).startswith("cuda")


def start_peak(device):
    "Reset the device's peak-memory counter (after freeing cached blocks), so the next `peak_mb` is one measurement's."
    import torch
    if cuda(device): sync(device); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device) -> float | None:
    "torch.cuda.max_memory_allocated since `start_peak`, in MiB (None on the CPU: no device memory to count)."
    import torch
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda(device) else None


def timed(device, fn):
    "(seconds, result) of `fn()`, synchronised before and after on a GPU."
    sync(device); t = time.perf_counter(); out = fn(); sync(device)
    return time.perf_counter() - t, out


def achieved(masks: dict) -> dict:
    "The masks' own counts: prunable weights, pruned, and the sparsity they make."
    n = sum(m.numel() for m in masks.values())
    pruned = n - sum(int(m.sum()) for m in masks.values())
    return {"prunable": n, "pruned": pruned, "sparsity": round(pruned / n, 6)}


# ---------------------------------------------------------------- 1. pruning cost
def pruning(args, model, state: dict) -> dict:
    "Forward, MULTIFLOW and SNIP over the same calibration batches on the device; MULTIFLOW's masks kept for item 2."
    import torch
    from vlprune_nb.families import family_of
    from vlprune_nb.pruning import prune
    fam = family_of(model)
    log(f"[1] {args.batches} × {args.batch_size} calibration pairs ...")
    calib = [{k: v.to(args.device) for k, v in b.items()} for b in scale.calib_batches(model, args.batches, args.batch_size)]
    calib_mb = sum(v.numel() * v.element_size() for b in calib for v in b.values()) / 2**20
    fam.calibration_forward(model, calib[0]); sync(args.device)                 # warm-up (kernels, allocator)
    rec = {"params": sum(p.numel() for p in model.parameters()), "pairs": args.batches * args.batch_size,
           "calib_batches_mb": round(calib_mb, 1), "seconds": {}, "peak_mb": {}, "masks": {}}
    start_peak(args.device)
    s, _ = timed(args.device, lambda: [fam.calibration_forward(model, b) for b in calib])
    rec["seconds"]["forward"], rec["peak_mb"]["forward"] = round(s, 6), peak_mb(args.device)
    log(f"    forward {s:.2f}s")
    for method in ("multiflow", "snip"):
        start_peak(args.device)
        s, result = timed(args.device, lambda: prune(model, method, args.sparsity, calib, device=args.device))
        rec["seconds"][method], rec["peak_mb"][method] = round(s, 6), peak_mb(args.device)
        rec["masks"][method] = achieved(result.masks)
        if method == "multiflow": state["masks"] = result.masks
        log(f"    {method} {s:.2f}s, sparsity {rec['masks'][method]['sparsity']}")
        del result
    sec = rec["seconds"]
    rec["multiflow_over_forward"] = round(sec["multiflow"] / sec["forward"], 4)
    rec["snip_over_forward"] = round(sec["snip"] / sec["forward"], 4)
    del calib
    return rec


# ---------------------------------------------------------------- 2. fine-tuning step time
def finetune(args, model, state: dict) -> dict:
    "`tasks.finetune` with bf16 autocast, MULTIFLOW's masks held; every optimizer step's end timed by a global hook."
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from vlprune_nb import tasks
    log(f"[2] fine-tuning, {args.ft_steps} steps at batch {args.ft_batch}, bf16 ...")
    ends = []
    def on_step(opt, a, kw): sync(args.device); ends.append(time.perf_counter())
    handle = register_optimizer_step_post_hook(on_step)
    start_peak(args.device)
    try:
        total, _ = timed(args.device, lambda: tasks.finetune(model, "retrieval", masks=state.get("masks"), steps=args.ft_steps,
                                                             batch_size=args.ft_batch, device=args.device,
                                                             mixed_precision="bf16", progress=False))
    finally: handle.remove()
    if len(ends) != args.ft_steps: raise RuntimeError(f"{len(ends)} optimizer steps were timed, {args.ft_steps} asked")
    steps = [b - a for a, b in zip(ends[args.ft_warmup - 1:], ends[args.ft_warmup:])]   # the steps after the warm-up ones
    rec = {"task": "retrieval", "mixed_precision": "bf16", "masks": "multiflow" if state.get("masks") else None,
           "batch_size": args.ft_batch, "steps": args.ft_steps, "warmup": args.ft_warmup,
           "step_s": [round(x, 6) for x in steps], "total_s": round(total, 3), "peak_mb": peak_mb(args.device)}
    rec["s_per_step"] = round(statistics.mean(rec["step_s"]), 6)
    log(f"    {rec['s_per_step']:.3f} s per step after {args.ft_warmup} warm-up step(s); {total:.1f}s in all")
    return rec


# ---------------------------------------------------------------- 3. 2:4 speed-up
def torchao_forward(s24, device, dtype, kernel: bool) -> dict:
    "BLIP-base's ITM forward with torchao's semi_sparse_weight on the 2:4-pruned encoder Linears, against dense."
    try:
        import torchao
        from torchao.sparsity import sparsify_, semi_sparse_weight
    except ImportError as e:
        return {"installed": False, "note": f"torchao is not installed ({e}); the 2:4 figures are torch.sparse."
                                            "to_sparse_semi_structured's, the kernel torchao's semi_sparse_weight wraps"}
    rec = {"installed": True, "version": getattr(torchao, "__version__", None)}
    if not kernel: return {**rec, "note": "no 2:4 kernel on this device (see sparse24.note)"}
    import torch, torch.nn as nn
    model = sparse24.blip(s24).to(device, dtype)
    names = {n for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder." in f".{n}" and m.in_features % 4 == 0}
    with torch.no_grad():
        for n, m in model.named_modules():
            if n in names: m.weight.copy_(sparse24.pruned_24(m.weight))
    sparse = copy.deepcopy(model)
    sparsify_(sparse, semi_sparse_weight(), lambda m, fqn: fqn in names)        # in place (older releases also return it)
    size, g = model.config.vision_config.image_size, torch.Generator().manual_seed(1)
    px = torch.randn(s24.batch, 3, size, size, generator=g).to(device, dtype)
    ids = torch.randint(0, model.config.text_config.vocab_size, (s24.batch, 32), generator=g).to(device)
    run = lambda m: m(input_ids=ids, pixel_values=px, use_itm_head=True).itm_score
    with torch.no_grad(): rec["max_abs_diff"] = float((run(sparse) - run(model)).abs().max())
    rec["ms"] = sparse24.median_ms({"dense": lambda: run(model), "torchao_24": lambda: run(sparse)}, max(3, s24.repeats // 3), device)
    rec["speedup"] = round(rec["ms"]["dense"] / rec["ms"]["torchao_24"], 3)
    return rec


def two_four(args) -> dict:
    "sparse24.py's measurements at this device (float16 on a GPU, as sparse24.py), and torchao's path when installed."
    import torch
    s24 = argparse.Namespace(quick=args.quick, tokens=args.tokens, batch=args.batch, repeats=args.repeats)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    kernel, why_not = sparse24.semi_structured_support(device, dtype)
    log(f"[3] 2:4: {'kernel available' if kernel else why_not}")
    rec = {"kernel": kernel, "note": why_not or None, "dtype": str(dtype).replace("torch.", ""),
           "tokens": args.tokens, "batch": args.batch, "repeats": args.repeats, "peak_mb": {}}
    for part, fn in (("layers", lambda: sparse24.layers(s24, device, dtype, kernel)),
                     ("end_to_end", lambda: sparse24.end_to_end(s24, device, dtype, kernel)),
                     ("torchao", lambda: torchao_forward(s24, device, dtype, kernel))):
        start_peak(args.device)
        rec[part] = fn()
        rec["peak_mb"][part] = peak_mb(args.device)
    return rec


# ---------------------------------------------------------------- main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small models and counts on the CPU (the test's mode)")
    ap.add_argument("--device", default=None, help="cuda (default when a GPU is here) or cpu (only when asked: the full "
                                                   "sizes take hours on a CPU); --quick defaults to cpu")
    ap.add_argument("--batches", type=int, default=None, help=f"calibration batches (default {FULL['batches']})")
    ap.add_argument("--batch-size", type=int, default=None, help=f"pairs per calibration batch (default {FULL['batch_size']})")
    ap.add_argument("--sparsity", type=float, default=0.63)
    ap.add_argument("--ft-steps", type=int, default=None, help=f"fine-tuning steps (default {FULL['ft_steps']})")
    ap.add_argument("--ft-warmup", type=int, default=None, help=f"of which warm-up steps, not averaged (default {FULL['ft_warmup']})")
    ap.add_argument("--ft-batch", type=int, default=None, help="fine-tuning batch (default settings.ini [tasks] batch_size)")
    ap.add_argument("--tokens", type=int, default=None, help=f"2:4: input rows of the per-layer products (default {FULL['tokens']})")
    ap.add_argument("--batch", type=int, default=None, help=f"2:4: image-text pairs of the ITM forward (default {FULL['batch']})")
    ap.add_argument("--repeats", type=int, default=None, help=f"2:4: interleaved timing repeats (default {FULL['repeats']})")
    ap.add_argument("--out", default=None, help="JSON written here ('': none; default data/user/benchmarks/gpu[-quick].json)")
    args = ap.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k, None) is None: setattr(args, k, v)
    if args.ft_batch is None:
        from vlprune_nb.config import settings
        args.ft_batch = settings().get("tasks", "batch_size", int)
    for name in ("batches", "batch_size", "ft_batch", "ft_steps", "tokens", "batch", "repeats"):
        if getattr(args, name) < 1: ap.error(f"argument --{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if not 1 <= args.ft_warmup < args.ft_steps:
        ap.error(f"argument --ft-warmup: must be >= 1 and below --ft-steps ({args.ft_steps}), got {args.ft_warmup}")
    if not 0 < args.sparsity < 1: ap.error(f"argument --sparsity: must be in (0, 1), got {args.sparsity}")
    import torch
    if args.device is None:
        if args.quick: args.device = "cpu"
        elif torch.cuda.is_available(): args.device = "cuda"
        else: ap.error("no CUDA GPU here, and this benchmark is for one: pass --quick for the small run on the CPU, or "
                       "--device cpu to run the full sizes on the CPU anyway (hours)")
    from vlprune_nb.config import check_device
    try: args.device = str(check_device(args.device))
    except ValueError as e: ap.error(f"argument --device: {e}")
    if args.out is None: args.out = str(USER_OUT / ("gpu-quick.json" if args.quick else "gpu.json"))
    return args


def main(argv=None) -> int:
    args = parse(argv)
    import torch
    from vlprune_nb.config import torch_threads
    torch.set_num_threads(torch_threads(None))
    t0 = time.perf_counter()
    dev = torch.device(args.device)
    try: import torchao; torchao_version = getattr(torchao, "__version__", "?")
    except ImportError: torchao_version = None
    res = {"benchmark": "gpu", "quick": args.quick, "device": args.device,
           "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "torchao": torchao_version,
           "settings": {"model": "blip", "size": args.size, "batches": args.batches, "batch_size": args.batch_size,
                        "sparsity": args.sparsity, "ft_steps": args.ft_steps, "ft_warmup": args.ft_warmup,
                        "ft_batch": args.ft_batch, "mixed_precision": "bf16", "threads": torch.get_num_threads(),
                        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
                        "sparse24": {"tokens": args.tokens, "batch": args.batch, "repeats": args.repeats}},
           "errors": {}}
    log(f"gpu benchmark: {args.size} BLIP on {args.device} ({res['device_name']}), torch {torch.__version__}")
    model = scale.build("blip", args.size).to(args.device)
    state: dict = {}
    for part, fn in (("pruning", lambda: pruning(args, model, state)), ("finetune", lambda: finetune(args, model, state)),
                     ("sparse24", lambda: two_four(args))):
        try: res[part] = fn()
        except Exception as e:                                  # one part failing must not lose the others' figures
            log(traceback.format_exc())
            res[part], res["errors"][part] = None, f"{type(e).__name__}: {e}"
    res["seconds"] = round(time.perf_counter() - t0, 1)
    line = json.dumps(res)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(line + "\n")
    print(line, flush=True)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
