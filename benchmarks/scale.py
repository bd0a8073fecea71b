"""What pruning costs and buys at the papers' scale: base-size architectures with random weights, on this machine.

    python benchmarks/scale.py [--quick] [--device cpu|cuda] [--threads N] [--batches 2] [--batch-size 8]
                               [--out FILE] [--readme]

Models, built from the families' configs with random weights (nothing is downloaded; timings and memory do not
depend on the weights' values, so a random-weight model needs no training):
- BLIP-base: ViT-B/16 at 224 px (12 layers, 768 wide, 12 heads) + the 12-layer MED (BERT-base text encoder and a
  decoder sharing all but self-attention), `families.blip_config` at those sizes;
- XVLM-base: 12 vision, 6 text, 6 fusion layers, 768 wide, 224 px, patch 16 (`families.xvlm_config`);
- CLIP ViT-B/16: transformers' CLIPConfig with CLIP's own sizes (vision 768 × 12 layers, text 512 × 12 layers,
  8 heads, 77 tokens, vocabulary 49,408; `ClipFamily.build` takes one width for both towers, CLIP's differ);
- ViT-B/16: `VitFamily.build` at 768 × 12 layers, 224 px, patch 16, 1,000 classes.
BLIP and XVLM get a BERT-size vocabulary (30,524 = BERT's 30,522 + [DEC] + [ENC], as BLIP's tokenizer), where
the text embeddings, the LM/MLM heads and their memory matter; calibration texts are 32 random tokens.

What is measured (`--quick`: the same on small models, for the test):
1. Pruning cost, each (model, method) in a fresh child process on the same `--batches` × `--batch-size`
   calibration batches (seed 0): forward-only seconds (the family's `calibration_forward` over the batches),
   MULTIFLOW, SNIP (forward + backward of the pretraining loss), wall and CPU seconds, and the child's peak
   resident set (load, calibration batches, scores and masks included: the end-to-end peak of item 4). CHITA:
   measured on ViT-B/16 at the B that fits (its memory by formula for B = 500 on every model).
2. UPop-extracted BLIP-base (retrieval, NLVR) and ViT-B/16 at 2× and 4×: the structure is a magnitude ranking of
   every ζ entry (norm of the rows it scales) selected as UPop selects (`structured.select_pruned`, the
   family's costs, p = 1 − 1/ratio): the UPop search needs task data at 224 px and is left out; what is measured
   is the extracted model's speed, which depends on its shapes only. Parameters, FLOPs, latency at batch 1 (median
   of `--repeats-b1` after a warm-up) and 32 (`--repeats-b32`, default one run: a base-size forward at batch 32
   takes tens of seconds here), every model's runs interleaved with the dense model's, speed-up ÷ FLOP reduction
   (goal ≥ 0.8), with and without `extract(round_to=16)`; a torch.profiler split (by op group) of the dense and the
   worst extracted forward at `--profile-batch` where the goal is missed at batch 32.
3. Unstructured sparsity 63 / 75 / 90 % (magnitude, per layer) of ViT-B/16's prunable Linears run as torch.sparse
   CSR and BSR (16 × 16 blocks) matrices against dense; checkpoint size of BLIP-base as safetensors: dense, and
   sparse = the kept values + bit-packed masks (`masks.save_masks`) + the dense rest.
4. From 1.: peak memory of pruning end to end, and the largest model a machine of this RAM can prune with each
   method: (RAM − the child's baseline) ÷ the measured bytes per parameter (a linear extrapolation of a
   measurement at base size, stated as such); CHITA by its formula (RAM and disk, at B = 500).

All figures are ratios within this one run. Wall seconds carry other jobs' load on a shared machine; with one
thread CPU seconds are the work done, so cost ratios are computed on CPU seconds (wall ratios beside them).
Progress on stderr; figures on stdout, its last line one JSON object, also written to `--out` (default: the user's
`data/user/benchmarks/scale.json`, or `scale-quick.json` with `--quick`, ignored by git, so a user's run never
changes a tracked file; the shipped figures are `benchmarks/results/scale.json`, replaced only by passing it as
`--out`). `--readme` renders docs/speed.md's scale table from the shipped JSON (or `--out`) without measuring.
"""
from __future__ import annotations
import argparse, json, math, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "scale.json"               # the shipped figures (docs/speed.md's block)
USER_OUT = ROOT / "data" / "user" / "benchmarks"                    # a user's runs (ignored by git)
README = ROOT / "docs" / "speed.md"
MARK = ("<!-- scale-table -->", "<!-- /scale-table -->")
BERT_VOCAB = 30_524
TEXT_LEN = 32
RAM_GIB = 24
SPARSITIES = (0.63, 0.75, 0.9)
DEFAULT_PAIRS = 16 * 32          # settings.ini [reproduce]: calib_batches × calib_batch_size


def log(*a): print(*a, file=sys.stderr, flush=True)
def rss_peak_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def rss_now_mb() -> float:
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------- models
SIZES = {"base": dict(hidden=768, layers=12, heads=12, image=224, patch=16, text_layers=6, fusion=6, vocab=BERT_VOCAB,
                      clip_text=512, clip_text_heads=8, clip_vocab=49_408, clip_len=77),
         "quick": dict(hidden=64, layers=2, heads=4, image=64, patch=16, text_layers=1, fusion=1, vocab=1000,
                       clip_text=32, clip_text_heads=4, clip_vocab=1000, clip_len=40)}
NAMES = {"blip": "BLIP-base", "xvlm": "XVLM-base", "clip": "CLIP ViT-B/16", "vit": "ViT-B/16"}


def build(name: str, size: str):
    "A random-weight model of family `name` at `size` ('base' or 'quick'), with its processor and family set."
    import torch
    from transformers import CLIPConfig, CLIPModel
    from vlprune_nb import families as F
    s = SIZES[size]
    torch.manual_seed(0)
    tok = F.world_tokenizer() if name != "vit" else None
    if name == "blip":
        cfg = F.blip_config(tok, hidden=s["hidden"], layers=s["layers"], heads=s["heads"], image_size=s["image"],
                            patch=s["patch"], embed=256)
        cfg.text_config.vocab_size = s["vocab"]
        model = F.BlipForPretraining(cfg)
    elif name == "xvlm":
        cfg = F.xvlm_config(tok, hidden=s["hidden"], text_layers=s["text_layers"], fusion_layers=s["fusion"],
                            vision_layers=s["layers"], heads=s["heads"], image_size=s["image"], patch=s["patch"], embed=256)
        cfg.text_config.vocab_size = s["vocab"]
        model = F.XVLMForPretraining(cfg)
    elif name == "clip":
        tc = dict(hidden_size=s["clip_text"], intermediate_size=4 * s["clip_text"], num_hidden_layers=s["layers"],
                  num_attention_heads=s["clip_text_heads"], max_position_embeddings=s["clip_len"], vocab_size=s["clip_vocab"])
        vc = dict(hidden_size=s["hidden"], intermediate_size=4 * s["hidden"], num_hidden_layers=s["layers"],
                  num_attention_heads=s["heads"], image_size=s["image"], patch_size=s["patch"])
        model = CLIPModel(CLIPConfig(text_config=tc, vision_config=vc, projection_dim=512 if size == "base" else 32))
    else:
        model = F.VitFamily.build(None, hidden=s["hidden"], layers=s["layers"], heads=s["heads"], image_size=s["image"],
                                  patch=s["patch"], num_labels=1000 if size == "base" else 10)
    model.config.vlprune_family = name
    model.processor = F.processor_for(model, tok)
    return model.eval()


def calib_batches(model, n: int, bs: int, seed: int = 0) -> list[dict]:
    "`n` random calibration batches of `bs` (images of the model's size, `TEXT_LEN` random tokens or labels)."
    import torch
    from vlprune_nb.families import family_of
    g, fam, cfg = torch.Generator().manual_seed(seed), family_of(model), model.config
    size = getattr(cfg, "vision_config", cfg).image_size
    out = []
    for _ in range(n):
        b = {"pixel_values": torch.randn(bs, 3, size, size, generator=g)}
        if fam.uses_text:
            vocab = cfg.text_config.vocab_size
            b["input_ids"] = torch.randint(7, vocab, (bs, TEXT_LEN), generator=g)
            b["attention_mask"] = torch.ones(bs, TEXT_LEN, dtype=torch.long)
        else: b["labels"] = torch.randint(0, cfg.num_labels, (bs,), generator=g)
        out.append(b)
    return out


def sync(device):
    import torch
    if str(device).startswith("cuda"): torch.cuda.synchronize()


# ---------------------------------------------------------------- 1. pruning cost, one (model, method) per child
def child(args) -> dict:
    "In this fresh process: build the model, make the batches, run one method; time it and report the peak RSS."
    import torch
    torch.set_num_threads(args.threads)
    from vlprune_nb.families import family_of, prunable
    from vlprune_nb.pruning import prune
    name, method = args.child.split(":")
    base_mb = rss_now_mb()
    model = build(name, args.size).to(args.device)
    calib = [{k: v.to(args.device) for k, v in b.items()} for b in calib_batches(model, args.batches, args.batch_size)]
    fam = family_of(model)
    fam.calibration_forward(model, calib[0]); sync(args.device)                 # warm-up
    before = rss_peak_mb()
    if str(args.device).startswith("cuda"): torch.cuda.reset_peak_memory_stats()
    t, tc = time.perf_counter(), time.process_time()
    if method == "forward":
        for b in calib: fam.calibration_forward(model, b)
        report = {}
    else:
        opts = {"workdir": args.workdir} if method == "chita" and args.workdir else {}
        report = prune(model, method, args.sparsity, calib, device=args.device, **opts).report
    sync(args.device)
    out = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - tc, "peak_rss_mb": rss_peak_mb(),
           "rss_before_mb": before, "baseline_mb": base_mb, "params": sum(p.numel() for p in model.parameters()),
           "prunable": sum(dict(model.named_parameters())[r.name].numel() for r in prunable(model))}
    if str(args.device).startswith("cuda"): out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if "chita" in report: out["chita"] = {k: report["chita"][k] for k in ("rows", "blocks", "solve_seconds", "kept", "budget")}
    return out


def run_child(args, name: str, method: str, batches: int | None = None, batch_size: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", f"{name}:{method}", "--size", args.size, "--threads", str(args.threads),
           "--batches", str(batches or args.batches), "--batch-size", str(batch_size or args.batch_size),
           "--sparsity", str(args.sparsity), "--device", args.device]
    if args.workdir: cmd += ["--workdir", args.workdir]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode: log(res.stderr[-3000:]); raise SystemExit(f"child {name}:{method} failed with code {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def chita_ram_bytes(p: int, n: int, model_bytes: float, block: int = 10_000) -> float:
    "CHITA's RAM by its formula (benchmarks/pruning_cost.py): model + 56·p + the row buffer + one block's refit."
    rows = max(1, min(n, (256 * 2**20) // (4 * p)))
    return model_bytes + 56 * p + 4 * p * rows + 12 * n * 2 * block


def pruning_cost(args) -> dict:
    "Item 1 and 4: every (model, method) child; ratios on CPU seconds; memory extrapolated to the machine's RAM."
    out = {}
    for name in args.models:
        rec = {}
        for method in ("forward", "multiflow", "snip"):
            log(f"[1] {name} {method} ..."); rec[method] = run_child(args, name, method)
            log(f"    {rec[method]['wall_s']:.1f}s (cpu {rec[method]['cpu_s']:.1f}s), peak RSS {rec[method]['peak_rss_mb']:.0f} MB")
        f, m, s = rec["forward"], rec["multiflow"], rec["snip"]
        r = {"params": f["params"], "prunable": f["prunable"],
             "seconds": {k: {"wall": round(v["wall_s"], 2), "cpu": round(v["cpu_s"], 2)} for k, v in rec.items()},
             "peak_rss_mb": {k: round(v["peak_rss_mb"], 1) for k, v in rec.items()},
             "baseline_rss_mb": round(f["baseline_mb"], 1),
             "multiflow_over_forward": round(m["cpu_s"] / f["cpu_s"], 3),
             "multiflow_over_forward_wall": round(m["wall_s"] / f["wall_s"], 3),
             "snip_over_multiflow": round(s["cpu_s"] / m["cpu_s"], 2),
             "snip_over_multiflow_wall": round(s["wall_s"] / m["wall_s"], 2)}
        if "cuda_peak_mb" in f: r["cuda_peak_mb"] = {k: round(v["cuda_peak_mb"], 1) for k, v in rec.items()}
        # item 4: bytes per parameter above the interpreter's baseline, extrapolated to the machine's RAM
        ram = RAM_GIB * 2**30
        r["largest_params_at_ram"] = {k: int((ram - v["baseline_mb"] * 2**20) / ((v["peak_rss_mb"] - v["baseline_mb"]) * 2**20 / v["params"]))
                                      for k, v in rec.items() if k != "forward"}
        mb = 4 * f["params"]
        r["chita_b500"] = {"ram_gb": round(chita_ram_bytes(f["prunable"], 500, mb) / 1e9, 1),
                           "disk_gb": round(4 * 500 * f["prunable"] / 1e9, 1),
                           "dense_A_gb": round(4 * 500 * f["prunable"] / 1e9, 1)}
        out[name] = r
        print(f"{NAMES[name]}: {r['params'] / 1e6:.1f} M params ({r['prunable'] / 1e6:.1f} M prunable); MULTIFLOW/forward "
              f"{r['multiflow_over_forward']} (wall {r['multiflow_over_forward_wall']}), SNIP/MULTIFLOW {r['snip_over_multiflow']}; "
              f"peak RSS MB {r['peak_rss_mb']}; CHITA at B=500: RAM {r['chita_b500']['ram_gb']} GB, disk {r['chita_b500']['disk_gb']} GB", flush=True)
    return out


def chita_measured(args) -> dict:
    "CHITA on ViT-B/16 at a B that fits, against its formula at that B."
    log(f"[1] vit chita at B = {args.chita_batches} ...")
    c = run_child(args, "vit", "chita", batches=args.chita_batches, batch_size=args.chita_batch_size)
    n, p = c["chita"]["rows"], c["prunable"]
    formula = chita_ram_bytes(p, n, 0) / 2**20                   # above what was resident before CHITA
    out = {"model": "vit", "batches": n, "batch_size": args.chita_batch_size, "prunable": p,
           "wall_s": round(c["wall_s"], 1), "cpu_s": round(c["cpu_s"], 1), "solve_s": round(c["chita"]["solve_seconds"], 1),
           "peak_rss_mb": round(c["peak_rss_mb"], 1), "rss_before_mb": round(c["rss_before_mb"], 1),
           "increase_mb": round(c["peak_rss_mb"] - c["rss_before_mb"], 1), "formula_increase_mb": round(formula, 1),
           "disk_mb": round(4 * n * p / 2**20, 1)}
    print(f"CHITA on ViT-B/16, B = {n}: peak RSS {out['peak_rss_mb']:.0f} MB (+{out['increase_mb']:.0f} MB over the model and "
          f"batches; formula +{out['formula_increase_mb']:.0f} MB), {out['wall_s']}s", flush=True)
    return out


# ---------------------------------------------------------------- 2. structured: extracted models' speed
def magnitude_structure(model, ratio: float) -> dict:
    "A UPop-style structure at `ratio`: every ζ entry scored by the norm of the rows it scales, selected by `select_pruned`."
    import torch
    from vlprune_nb import structured as S
    us, mods = S.units(model), dict(model.named_modules())
    scores = {}
    for u in us:
        per = []
        for q in u.ins:
            w = mods[q].weight.detach()
            tiles = 3 if u.fused else 1
            per.append(w.reshape(tiles * u.heads, u.size, -1).norm(dim=-1).sum(0))      # (size,)
        scores[u.name] = torch.stack(per).sum(0)
    costs = S.unit_costs(model, us)
    pruned = S.select_pruned({n: -v for n, v in S.group_zscores(scores, us).items()}, costs, S.ratio_to_p(ratio))
    for u in us:                                                          # every module keeps at least one entry
        if pruned[u.name].all(): pruned[u.name][scores[u.name].argmax()] = False
    return S.make_structure(model, us, {n: ~m for n, m in pruned.items()}, costs, method="magnitude", ratio=ratio)


def implied_params(dense_params: int, structure: dict, small) -> int:
    "Parameters the extracted model must have: the dense count less (width − kept width) × params per entry, per unit."
    kept = {n: e["kept"] for n, e in small.vlprune_structure["modules"].items()}
    return dense_params - sum((m["size"] - kept[n]) * m["entry_params"] for n, m in structure["modules"].items())


OP_GROUPS = (("patch conv", ("convolution",)), ("matmul", ("addmm", "mm", "bmm", "matmul", "linear", "baddbmm")),
             ("attention", ("softmax", "scaled_dot_product", "flash_attention")),
             ("layernorm", ("layer_norm",)), ("activation", ("gelu", "relu", "silu", "tanh")),
             ("copies", ("copy_", "contiguous", "clone", "cat", "index", "reshape", "permute", "transpose", "view", "expand", "_to_copy")),
             ("elementwise", ("add", "mul", "div", "sub", "pow", "sqrt", "rsqrt", "where", "masked_fill")))


def profile_split(call, device: str = "cpu") -> dict:
    "Self milliseconds of one call by op group (torch.profiler; CPU time, or the GPU's kernel time on a CUDA device), and the total."
    import torch
    from torch.profiler import profile, ProfilerActivity
    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.no_grad(), profile(activities=acts) as prof:
        call()
        if cuda: torch.cuda.synchronize()
    self_ms = (lambda e: e.self_device_time_total / 1000) if cuda else (lambda e: e.self_cpu_time_total / 1000)
    groups = {g: 0.0 for g, _ in OP_GROUPS}; groups["other"] = 0.0
    ops = sorted(prof.key_averages(), key=lambda e: -self_ms(e))
    for e in ops:
        op = e.key.replace("aten::", "")
        g = next((g for g, keys in OP_GROUPS if any(k in op for k in keys)), "other")
        groups[g] += self_ms(e)
    return {"ms": {k: round(v, 1) for k, v in groups.items()}, "total_ms": round(sum(groups.values()), 1),
            "top_ops": [[e.key, round(self_ms(e), 1), e.count] for e in ops[:8]]}


def structured_speed(args) -> dict:
    "Item 2: dense and extracted models (2×, 4×; plain and round_to=16), params, FLOPs, interleaved latency."
    import torch
    from vlprune_nb import structured as S
    from vlprune_nb.tasks import task_model
    out = {}
    bases = {}
    for key, (name, task) in {"blip_retrieval": ("blip", "retrieval"), "blip_nlvr": ("blip", "nlvr"),
                              "vit": ("vit", "classification")}.items():
        if name not in bases: bases[name] = build(name, args.size)
        dense = task_model(bases[name], task).eval().to(args.device) if task != "classification" else bases[name].to(args.device)
        log(f"[2] {key}: structures and extraction ...")
        models, rec = {"dense": dense}, {"task": task, "dense": {"params": S.count_params(dense)}}
        for r in args.ratios:
            st = magnitude_structure(dense, r)
            for rt in (1, 16):
                small = S.extract(dense, st, round_to=rt)
                tag = f"{r:g}x" + ("" if rt == 1 else "_r16")
                models[tag] = small
                rec[tag] = {"params": S.count_params(small), "implied_params": implied_params(rec["dense"]["params"], st, small),
                            "pruned_mass": round(st["pruned_mass"], 4), "round_to": rt}
        for tag, m in models.items():
            f1, f2 = S.count_flops(m, task, 1, text_len=TEXT_LEN), S.count_flops(m, task, 2, text_len=TEXT_LEN)
            rec[tag].update(flops_b1=f1, flops_b32=f1 + 31 * (f2 - f1))
        for b, reps, warm in ((1, args.repeats_b1, 1), (32, args.repeats_b32, 0)):
            log(f"[2] {key}: latency at batch {b} ({reps} interleaved repeats) ...")
            xs = {t: S.example_inputs(m, task, b, text_len=TEXT_LEN) for t, m in models.items()}
            def call(m, x):
                def f(): S.inference_forward(m, task, x); sync(args.device)
                return f
            lat = S.median_times({t: call(m, xs[t]) for t, m in models.items()}, reps, warmup=warm)
            for t in models: rec[t][f"latency_ms_b{b}"] = round(1000 * lat[t], 2)
        for t in models:
            if t == "dense": continue
            for b in (1, 32):
                fr = rec["dense"][f"flops_b{b}"] / rec[t][f"flops_b{b}"]
                sp = rec["dense"][f"latency_ms_b{b}"] / rec[t][f"latency_ms_b{b}"]
                rec[t][f"flop_reduction_b{b}"] = round(fr, 3); rec[t][f"speedup_b{b}"] = round(sp, 3)
                rec[t][f"speedup_over_flop_reduction_b{b}"] = round(sp / fr, 3)
        worst = min((t for t in models if t != "dense"), key=lambda t: rec[t]["speedup_over_flop_reduction_b32"])
        if rec[worst]["speedup_over_flop_reduction_b32"] < 0.8 or args.quick:
            log(f"[2] {key}: profile of dense and {worst} at batch {args.profile_batch} ...")
            x = {t: S.example_inputs(models[t], task, args.profile_batch, text_len=TEXT_LEN) for t in ("dense", worst)}
            rec["profile"] = {t: profile_split(lambda t=t: S.inference_forward(models[t], task, x[t]), args.device) for t in ("dense", worst)}
            rec["profile"].update(model=worst, batch=args.profile_batch)
        out[key] = rec
        for t in models:
            if t == "dense": continue
            q = rec[t]
            print(f"{key} {t}: params {q['params'] / 1e6:.1f} M (dense {rec['dense']['params'] / 1e6:.1f} M), FLOPs ÷{q['flop_reduction_b1']}, "
                  f"latency b1 {q['latency_ms_b1']} ms (dense {rec['dense']['latency_ms_b1']}), b32 {q['latency_ms_b32']} ms "
                  f"(dense {rec['dense']['latency_ms_b32']}); speed-up/FLOP reduction b1 {q['speedup_over_flop_reduction_b1']}, "
                  f"b32 {q['speedup_over_flop_reduction_b32']}", flush=True)
        del models, dense
    return out


# ---------------------------------------------------------------- 3. unstructured sparsity at inference, and on disk
class SparseLinear:
    "A Linear's forward with its weight as a torch.sparse CSR or BSR matrix: y = (W xᵀ)ᵀ + b."
    def __init__(self, lin, layout: str, block: int = 16):
        import torch
        w = lin.weight.detach()
        self.w = w.to_sparse_csr() if layout == "csr" else w.to_sparse_bsr((block, block))
        self.b = lin.bias.detach() if lin.bias is not None else None
        self.stored = int(self.w.values().numel())
    def __call__(self, module, args, output=None):
        x = args[0]
        y = (self.w @ x.reshape(-1, x.shape[-1]).T).T.reshape(*x.shape[:-1], -1)
        return y + self.b if self.b is not None else y


def sparse_model(model, layout: str):
    "A copy of `model` whose prunable Linears compute with sparse weights (the dense forward replaced); stored entries."
    import copy, torch
    from vlprune_nb.families import prunable
    m = copy.deepcopy(model)
    stored = 0
    for r in prunable(m):
        lin = m.get_submodule(r.name.rsplit(".", 1)[0])
        sp = SparseLinear(lin, layout); stored += sp.stored
        lin.forward = (lambda sp: (lambda x: sp(None, (x,))))(sp)
    return m, stored


def magnitude_masks(model, s: float) -> dict:
    "Per-layer magnitude masks at sparsity `s` of the prunable weights (True = kept)."
    import torch
    from vlprune_nb.families import prunable
    ps = dict(model.named_parameters())
    out = {}
    for r in prunable(model):
        w = ps[r.name].detach().abs().flatten()
        k = int(s * w.numel())
        keep = torch.ones_like(w, dtype=torch.bool)
        if k: keep[w.argsort()[:k]] = False
        out[r.name] = keep.view_as(ps[r.name])
    return out


def unstructured(args) -> dict:
    "Item 3: sparse (CSR, BSR) inference of ViT-B/16 against dense; sparse checkpoint size of BLIP-base."
    import torch
    from safetensors.torch import save_file
    from vlprune_nb import structured as S
    from vlprune_nb.masks import save_masks
    from vlprune_nb.pruning import PruneResult
    out = {"inference": {}, "checkpoint": {}}
    vit = build("vit", args.size)
    x = {b: S.example_inputs(vit, "classification", b) for b in args.sparse_batches}
    for s in SPARSITIES:
        log(f"[3] ViT at {s:.0%}: CSR / BSR latency ...")
        dense = PruneResult(magnitude_masks(vit, s)).apply(__import__("copy").deepcopy(vit))
        rec = {}
        models = {"dense": dense}
        for layout in ("csr", "bsr"):
            models[layout], stored = sparse_model(dense, layout)
            rec[f"{layout}_stored_share"] = round(stored / sum(m.numel() for m in magnitude_masks(vit, s).values()), 4)
        with torch.no_grad():
            ref = dense(pixel_values=x[args.sparse_batches[0]]["pixel_values"]).logits
            for layout in ("csr", "bsr"):
                got = models[layout](pixel_values=x[args.sparse_batches[0]]["pixel_values"]).logits
                rec[f"{layout}_max_abs_diff"] = float((got - ref).abs().max())
        for b in args.sparse_batches:                                 # larger batches: one interleaved run each
            lat = S.median_times({k: (lambda m=m: m(pixel_values=x[b]["pixel_values"])) for k, m in models.items()},
                                 args.repeats_sparse if b == 1 else 1, warmup=1 if b == 1 else 0)
            rec[f"latency_ms_b{b}"] = {k: round(1000 * v, 2) for k, v in lat.items()}
            rec[f"speedup_b{b}"] = {k: round(lat["dense"] / lat[k], 3) for k in ("csr", "bsr")}
        out["inference"][f"{s:g}"] = rec
        print(f"ViT-B/16 at {s:.0%}: " + ", ".join(f"b{b}: dense {rec[f'latency_ms_b{b}']['dense']} ms, CSR ×{rec[f'speedup_b{b}']['csr']}, "
                                                  f"BSR ×{rec[f'speedup_b{b}']['bsr']}" for b in args.sparse_batches), flush=True)
    log("[3] checkpoint sizes (BLIP) ...")
    blip = build("blip", args.size)
    with tempfile.TemporaryDirectory(dir=args.workdir) as d:
        dense_file = Path(d) / "dense.safetensors"
        save_file({k: v for k, v in dict(blip.named_parameters()).items()}, str(dense_file))
        out["checkpoint"]["dense_mb"] = round(dense_file.stat().st_size / 2**20, 1)
        params = dict(blip.named_parameters())
        for s in SPARSITIES:
            masks = magnitude_masks(blip, s)
            vals = {n: params[n].detach()[masks[n]] for n in masks}
            rest = {n: p.detach() for n, p in params.items() if n not in masks}
            fv, fm = Path(d) / f"values_{s}.safetensors", Path(d) / f"masks_{s}.safetensors"
            save_file({**rest, **vals}, str(fv)); save_masks(masks, fm)
            tot = fv.stat().st_size + fm.stat().st_size
            out["checkpoint"][f"{s:g}"] = {"values_mb": round(fv.stat().st_size / 2**20, 1), "masks_mb": round(fm.stat().st_size / 2**20, 1),
                                           "total_mb": round(tot / 2**20, 1), "ratio_to_dense": round(tot / dense_file.stat().st_size, 3)}
            fv.unlink(); fm.unlink()
    print("BLIP-base checkpoint: dense " + f"{out['checkpoint']['dense_mb']} MB; " + ", ".join(
        f"{float(s):.0%}: {v['total_mb']} MB (×{v['ratio_to_dense']})" for s, v in out["checkpoint"].items() if s != "dense_mb"), flush=True)
    return out


# ---------------------------------------------------------------- README table
def multiflow_at(r: dict, pairs_measured: int, pairs: int) -> float:
    """MULTIFLOW ÷ forward projected to `pairs` calibration pairs from a measurement at `pairs_measured`, taking all
    of MULTIFLOW's extra CPU time as per weight (scores, prior, masks: independent of the batches), the forward as
    per pair. A lower bound: whatever part of the extra time is per batch (the statistics hooks) does not shrink."""
    f, m = r["seconds"]["forward"]["cpu"], r["seconds"]["multiflow"]["cpu"]
    return 1 + (m - f) / (f * pairs / pairs_measured) if f > 0 else float("nan")


def chita_largest(r: dict) -> int:
    "Parameters of the largest model of this one's shape (same prunable share) whose CHITA fits in RAM_GIB by its formula."
    share = r["prunable"] / r["params"]
    per_param = 4 + 60 * share                                       # the float32 model + 56·p + the one-row buffer 4·p
    return int((RAM_GIB * 2**30 - r["baseline_rss_mb"] * 2**20) / per_param)


def fmt_int(n): return f"{n / 1e6:.0f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def readme_table(res: dict) -> str:
    "README's scale table (markdown) from the JSON of a run."
    m = res["machine"]
    lines = [f"Base-size models with random weights (`python benchmarks/scale.py`, {m['when']}; {m['cpus']}-CPU {m['processor']}, "
             f"{m['threads']} torch thread(s), {m['load']}; ratios within one run, cost ratios on CPU seconds):", "",
             f"| model | params (prunable) | MULTIFLOW ÷ forward (goal ≤ 1.25) at {res['batches'] * res['batch_size']} pairs; "
             f"projected at {DEFAULT_PAIRS} | SNIP ÷ MULTIFLOW | peak RSS forward / MULTIFLOW / SNIP | "
             f"largest model at {RAM_GIB} GiB, MULTIFLOW / SNIP / CHITA | CHITA at B = 500: RAM / disk |",
             "|---|---|---|---|---|---|---|"]
    for k, r in res["pruning"].items():
        pk = r["peak_rss_mb"]
        proj = multiflow_at(r, res["batches"] * res["batch_size"], DEFAULT_PAIRS)
        lines.append(f"| {NAMES[k]} | {fmt_int(r['params'])} ({fmt_int(r['prunable'])}) | {r['multiflow_over_forward']:.2f}; ≥ {proj:.2f} "
                     f"| {r['snip_over_multiflow']:.2f} | {pk['forward'] / 1024:.1f} / {pk['multiflow'] / 1024:.1f} / {pk['snip'] / 1024:.1f} GB "
                     f"| {fmt_int(r['largest_params_at_ram']['multiflow'])} / {fmt_int(r['largest_params_at_ram']['snip'])} / "
                     f"{fmt_int(chita_largest(r))} "
                     f"| {r['chita_b500']['ram_gb']} / {r['chita_b500']['disk_gb']} GB |")
    lines += ["", "Projected ratio: MULTIFLOW's extra CPU time taken as all per weight (scores, prior, masks), the forward as per "
              f"pair, at settings.ini's {DEFAULT_PAIRS} calibration pairs: a lower bound. Largest model: ({RAM_GIB} GiB − the child's "
              "baseline) ÷ the peak bytes per parameter measured here, a linear extrapolation at this calibration batch; CHITA by "
              "its formula (float32 model + 60 bytes per prunable weight in RAM), whose gradient file takes 4·B bytes per "
              "prunable weight on disk."]
    c = res["chita"]
    lines += ["", f"CHITA measured on ViT-B/16 at B = {c['batches']} × {c['batch_size']}: peak RSS {c['peak_rss_mb'] / 1024:.1f} GB, "
              f"+{c['increase_mb'] / 1024:.2f} GB over the model and batches (formula: +{c['formula_increase_mb'] / 1024:.2f} GB), {c['wall_s']:.0f} s.", "",
              "| UPop-extracted (magnitude structure) | params | FLOPs ÷ | latency b1 / b32 (ms) | speed-up ÷ FLOP reduction b1 / b32 (goal ≥ 0.8) |",
              "|---|---|---|---|---|"]
    for key, rec in res["structured"].items():
        d = rec["dense"]
        lines.append(f"| {key} dense | {fmt_int(d['params'])} | 1 | {d['latency_ms_b1']:.0f} / {d['latency_ms_b32']:.0f} | |")
        for t, q in rec.items():
            if t in ("dense", "task", "profile"): continue
            lines.append(f"| {key} {t.replace('_r16', ', round_to=16')} | {fmt_int(q['params'])} | {q['flop_reduction_b1']:.2f} "
                         f"| {q['latency_ms_b1']:.0f} / {q['latency_ms_b32']:.0f} | {q['speedup_over_flop_reduction_b1']:.2f} / "
                         f"{q['speedup_over_flop_reduction_b32']:.2f} |")
    for key, rec in res["structured"].items():
        if "profile" not in rec: continue
        pr = rec["profile"]; a, b = pr["dense"], pr[pr["model"]]
        lines += ["", f"Where {key} {pr['model']} spends batch {pr['batch']} (torch.profiler, self CPU ms, dense → extracted): " + ", ".join(
            f"{g} {a['ms'][g]:.0f} → {b['ms'][g]:.0f}" for g in a["ms"] if a["ms"][g] + b["ms"][g] >= 0.01 * a["total_ms"])
            + f"; total {a['total_ms']:.0f} → {b['total_ms']:.0f}."]
    u = res["unstructured"]
    bs = sorted({int(k[len('latency_ms_b'):]) for v in u["inference"].values() for k in v if k.startswith("latency_ms_b")})
    lines += ["", "| ViT-B/16 unstructured | " + " | ".join(f"CSR / BSR speed-up b{b}" for b in bs) + " | BLIP-base checkpoint (values + bit-packed masks) |",
              "|---|" + "---|" * len(bs) + "---|"]
    for s, v in u["inference"].items():
        ck = u["checkpoint"][s]
        lines.append(f"| {float(s):.0%} | " + " | ".join(f"{v[f'speedup_b{b}']['csr']:.2f} / {v[f'speedup_b{b}']['bsr']:.2f}" for b in bs)
                     + f" | {ck['total_mb']:.0f} MB (×{ck['ratio_to_dense']:.2f} of dense {u['checkpoint']['dense_mb']:.0f} MB) |")
    return "\n".join(lines)


def main_job_lines(mj: dict) -> str:
    "README's main-job paragraph from benchmarks/results/main_job.json."
    ph, m = mj["phases"], mj["machine"]
    c = mj["config"]
    names = ("load", "calibration", "pruning", "fine-tuning", "evaluation", "evaluation: ITM re-ranking", "figure")
    out = [f"Main job (`python benchmarks/main_job.py --papermill`: {c['family']} {c['method']} {c['sparsity']:g} {c['task']}, "
           f"{mj['threads']} torch thread(s), {m['cpus']}-CPU {m['processor']}, load average "
           f"{m['loadavg_start'][0]:.1f} → {m['loadavg_end'][0]:.1f}), wall / CPU seconds: "
           + ", ".join(f"{k} {ph[k]['wall_s']:.0f} / {ph[k]['cpu_s']:.0f}" for k in names if k in ph)
           + f"; the whole job {mj['total']['wall_s']:.0f} / {mj['total']['cpu_s']:.0f}"
           + f" (ITM re-ranking on {mj.get('itm_workers_used', 1)} worker thread(s): the CPUs free when it started)."]
    if "papermill" in mj:
        out.append(f"`papermill nbs/run.ipynb` end to end: {mj['papermill']['wall_s']:.0f} s wall, {mj['papermill']['cpu_s']:.0f} s CPU "
                   f"(kernel start and imports included).")
    if "idle_estimate_s" in mj and mj.get("itm_workers_used", 1) == 1:   # CPU seconds stand for wall only on one thread
        out.append(f"Estimate for an idle machine (one thread: its CPU seconds, which sharing the machine inflates "
                   f"rather than deflates): {mj.get('papermill', mj['total'])['cpu_s']:.0f} s.")
    if "step_profile" in mj:
        sp = mj["step_profile"]
        out.append(f"One fine-tuning step (batch {sp['batch_size']}): {sp['step_s']:.2f} s, of which " + ", ".join(
            f"{k} {100 * v:.0f} %" for k, v in sp["share"].items()) + ".")
    return " ".join(out)


def main_job_time(mj: dict) -> str:
    "README's time of the main job, from benchmarks/results/main_job.json."
    m, pm = mj["machine"], mj.get("papermill", mj["total"])
    return (f"about {pm['wall_s'] / 60:.0f} minutes end to end on a {m['cpus']}-CPU {m['processor']} machine, one torch "
            f"thread, as `python benchmarks/main_job.py --papermill` measured it")

def render_main_job_time(mj_path: Path = OUT.parent / "main_job.json", readme: Path = ROOT / "README.md") -> str:
    "README.md's text with its main-job-time mark filled from `mj_path` (on the same line: it sits in a sentence)."
    text, mark = readme.read_text(), ("<!-- main-job-time -->", "<!-- /main-job-time -->")
    a, b = text.index(mark[0]) + len(mark[0]), text.index(mark[1])
    return text[:a] + main_job_time(json.loads(Path(mj_path).read_text())) + text[b:]

def render_readme(json_path: Path = OUT, readme: Path = README) -> str:
    "docs/speed.md's text with the block between the scale-table markers rendered from `json_path` (and main_job.json beside it)."
    text, res = readme.read_text(), json.loads(Path(json_path).read_text())
    mj = Path(json_path).parent / "main_job.json"
    block = readme_table(res) + ("\n\n" + main_job_lines(json.loads(mj.read_text())) if mj.is_file() else "")
    a, b = text.index(MARK[0]) + len(MARK[0]), text.index(MARK[1])
    return text[:a] + "\n" + block + "\n" + text[b:]


# ---------------------------------------------------------------- main
PARTS = {"pruning": pruning_cost, "chita": chita_measured, "structured": structured_speed, "unstructured": unstructured}

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small models and counts (about a minute): the test's mode")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default config.torch_threads for a base-size model)")
    ap.add_argument("--batches", type=int, default=2, help="calibration batches of the cost measurements")
    ap.add_argument("--batch-size", type=int, default=8, help="pairs per calibration batch")
    ap.add_argument("--sparsity", type=float, default=0.63)
    ap.add_argument("--chita-batches", type=int, default=4, help="B of the measured CHITA run (ViT-B/16)")
    ap.add_argument("--chita-batch-size", type=int, default=4)
    ap.add_argument("--models", nargs="+", default=list(NAMES), choices=list(NAMES))
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS),
                    help="what to measure (default all): pruning = items 1 and 4, chita, structured = item 2, unstructured = item 3")
    ap.add_argument("--ratios", type=float, nargs="+", default=[2, 4])
    ap.add_argument("--repeats-b1", type=int, default=5, help="interleaved latency repeats at batch 1 (after one warm-up)")
    ap.add_argument("--repeats-b32", type=int, default=1, help="interleaved latency repeats at batch 32 (no warm-up: a base-size forward at batch 32 takes tens of seconds here)")
    ap.add_argument("--profile-batch", type=int, default=8, help="batch of the torch.profiler split where the speed-up goal is missed")
    ap.add_argument("--repeats-sparse", type=int, default=3)
    ap.add_argument("--sparse-batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--workdir", default=None, help="folder for CHITA's gradient file and the checkpoints (default: temp)")
    ap.add_argument("--out", default=None, help="JSON written here ('': none; default data/user/benchmarks/scale[-quick].json); "
                                                 f"--readme reads it (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--readme", action="store_true", help="render docs/speed.md's scale table and README's main-job time "
                                                          "from the JSON and write them (no measuring)")
    ap.add_argument("--child", help=argparse.SUPPRESS); ap.add_argument("--size", default="base", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.readme:
        src = Path(args.out or OUT)
        README.write_text(render_readme(src)); log(f"{README.relative_to(ROOT)}: scale table from {src}")
        readme = ROOT / "README.md"
        readme.write_text(render_main_job_time(src.parent / "main_job.json", readme)); log("README.md: main job's time"); return
    if args.out is None: args.out = str(USER_OUT / ("scale-quick.json" if args.quick else "scale.json"))
    from vlprune_nb.config import torch_threads, usable_cpus, busy_cpus, check_device
    args.device = str(check_device(args.device))
    if args.threads is None: args.threads = torch_threads(None)
    if args.child:
        print(json.dumps(child(args))); return
    if args.quick:
        args.size, args.models, args.batches, args.batch_size = "quick", ["blip", "vit"], 2, 4
        args.chita_batches, args.chita_batch_size, args.repeats_b1, args.repeats_b32, args.repeats_sparse = 2, 2, 2, 1, 1
        args.sparse_batches, args.profile_batch = [1], 4
    import torch
    torch.set_num_threads(args.threads)
    load0, t0, busy0 = os.getloadavg(), time.perf_counter(), busy_cpus()
    log(f"scale benchmark: {args.size} models, {args.threads} thread(s), device {args.device}")
    res = {"size": args.size, "device": args.device, "threads": args.threads, "batches": args.batches, "batch_size": args.batch_size,
           "sparsity": args.sparsity, "text_len": TEXT_LEN, "vocab": SIZES[args.size]["vocab"]}
    res.update({part: PARTS[part](args) for part in args.parts})
    ok = lambda v, goal, le: (v <= goal) if le else (v >= goal)
    res["goals"] = {}
    if "pruning" in res:
        res["goals"]["multiflow_le_1.15x_forward"] = {k: ok(r["multiflow_over_forward"], 1.15, True) for k, r in res["pruning"].items()}
    if "structured" in res:
        res["goals"]["speedup_over_flop_reduction_ge_0.8_b32"] = {f"{k} {t}": ok(q["speedup_over_flop_reduction_b32"], 0.8, False)
                                                                  for k, rec in res["structured"].items() for t, q in rec.items()
                                                                  if t not in ("dense", "task", "profile")}
    busy1 = busy_cpus()
    res["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpus": usable_cpus(),
                      "torch": torch.__version__, "threads": args.threads, "when": time.strftime("%Y-%m-%d"),
                      "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                      "busy_cpus_start_end": [busy0, busy1], "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                      "load": ("shared with other jobs (load average "
                               f"{max(load0[0], os.getloadavg()[0]):.1f} on {usable_cpus()} CPUs)") if max(load0[0], os.getloadavg()[0]) > 1.5 else "otherwise idle",
                      "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
