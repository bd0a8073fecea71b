"""What pruning costs on the shipped BLIP: MULTIFLOW against the forward passes it needs, SNIP, and CHITA's time
and peak memory.

    python benchmarks/pruning_cost.py [--batches 500] [--batch-size 32] [--sparsity 0.63] [--threads 1]

Progress goes to stderr; the last line on stdout is one JSON object with `multiflow_s`, `forward_only_s`,
`snip_s`, `chita_s`, `chita_peak_rss_mb`, the ratios against the goals, and the machine.

What is timed, all on the same B calibration batches of the world's pretraining split
(`data.calibration_batches(model, B, batch_size, seed=0)`; loading them is timed apart, as `data_s`). Every `*_s`
is wall-clock seconds (`time.perf_counter`); every `*_cpu_s` the process's CPU seconds (`time.process_time`).
With one torch thread, CPU time is the work done; on a shared machine the wall clock also carries other jobs'
load, so the goal ratios are computed on CPU time (the wall-clock ratios are printed beside them):
- `forward_only_s`: `BlipFamily.calibration_forward` over the B batches (vision encoder, image-grounded text
  encoder, decoder; no_grad), i.e. the passes MULTIFLOW cannot avoid.
- `multiflow_s`: the whole `prune(model, "multiflow", s, calib)` call: the same passes with the statistics hooks,
  the scores, the prior and the masks. Goal: ≤ 1.25 × forward_only_s. Both are measured `--repeats` times,
  interleaved, and the minimum of each is kept (the least disturbed run).
- `snip_s`: `prune(model, "snip", s, calib)`: forward and backward of the pretraining loss (ITC + ITM with hard
  negatives + LM) on every batch. Goal: ≥ 2.5 × multiflow_s.
- `chita_s`, `chita_peak_rss_mb`: `prune(model, "chita", s, calib)` run in a fresh child process, so its peak
  resident set (`ru_maxrss`: Python, torch, the model and the batches included) is CHITA's alone. Goal ≤ 2 GB.
Per-batch size: 32 pairs, the papers' (`--batch-size` changes it; MULTIFLOW's hooks cost a fixed few
microseconds per layer call, so smaller batches of this tiny model show a larger relative overhead: about 1.15×
at 16).

CHITA's memory. The reference stores the n × p float32 matrix A of per-batch gradients in RAM: 4·n·p bytes. For
the paper's BLIP-base (p = 226,492,416 prunable weights: 84,934,656 vision, 113,246,208 text encoder,
28,311,552 decoder self-attention) and n = 500 that is 4 · 500 · 226,492,416 B = 453.0 GB (the supplement's
"~453 GB"). `pruning.GradientStore` streams A to a file instead (block-major, so a block of ~10⁴ columns is one
contiguous read) and the solver reads one block at a time:
    disk  = 4·n·p bytes                                              (453 GB for BLIP-base at n = 500)
    RAM  ≈ model + 56·p bytes + 4·p·max(1, min(n, ⌊256 MB / 4p⌋)) + 12·n·w_max   (w_max ≤ 2·10⁴ columns)
where 56·p bytes are ~14 float32 p-vectors alive at the peak (the copy `prune` keeps of the weights, the
gradients, one gradient row, α, w̄, β, the search direction, |β|, the solution, the masks), the next term the
row buffer (as many rows as fit in 256 MB, at least one), and the last one block in float32 plus its refit in
float64. For BLIP-base: 12.7 GB + the model (≈ 0.9 GB in float32) + a one-row buffer (0.9 GB) + 0.12 GB ≈ 15 GB,
instead of 453 GB. For the shipped BLIP (p = 2,097,152): 0.12 GB + a 30-row buffer (0.25 GB) on top of Python,
torch, the model and the batches, where A itself would be 4.2 GB at n = 500; measured (B = 500 × 32, 2-core CPU):
peak RSS 1384 MB, of which 986 MB before CHITA started.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))


def log(*a): print(*a, file=sys.stderr, flush=True)

def rss_peak_mb() -> float:
    "Peak resident set of this process in MB (Linux reports KB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def setup(args):
    import torch
    torch.set_num_threads(args.threads)
    from vlprune_nb.families import load
    from vlprune_nb.data import calibration_batches
    model = load("blip")
    t = time.perf_counter()
    calib = calibration_batches(model, args.batches, batch_size=args.batch_size, seed=0)
    return model, calib, time.perf_counter() - t

def chita_child(args) -> dict:
    "Run CHITA alone in this (fresh) process; report its time and this process's peak RSS."
    from vlprune_nb.pruning import prune
    model, calib, data_s = setup(args)
    rss0 = rss_peak_mb()
    t, tc = time.perf_counter(), time.process_time()
    r = prune(model, "chita", args.sparsity, calib, lam=args.lam, workdir=args.workdir)
    c = r.report["chita"]
    return {"chita_s": time.perf_counter() - t, "chita_cpu_s": time.process_time() - tc,
            "chita_peak_rss_mb": rss_peak_mb(), "rss_before_chita_mb": rss0,
            "solve_s": c["solve_seconds"], "kept": c["kept"], "budget": c["budget"], "shortfall": c["shortfall"],
            "rows": c["rows"], "blocks": c["blocks"], "prunable": r.report["prunable"], "pruned": r.report["pruned"]}

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=500, help="B, calibration batches (default 500, the paper's CHITA budget)")
    ap.add_argument("--batch-size", type=int, default=32, help="pairs per batch (default 32, the papers')")
    ap.add_argument("--sparsity", type=float, default=0.63)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of forward-only and MULTIFLOW; the minimum is kept")
    ap.add_argument("--lam", type=float, default=0.1, help="CHITA's ridge penalty λ (supplement: 1e-1 for BLIP)")
    ap.add_argument("--workdir", default=None, help="folder for CHITA's streamed gradient file (default: the system temp dir)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["snip", "chita"], help="methods to leave out")
    ap.add_argument("--child", choices=["chita"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(chita_child(args))); return

    import torch
    from vlprune_nb.families import family_of
    from vlprune_nb.pruning import prune
    load0 = os.getloadavg()
    model, calib, data_s = setup(args)
    fam = family_of(model)
    log(f"{args.batches} batches of {args.batch_size} loaded in {data_s:.1f}s")
    fam.calibration_forward(model, calib[0]); prune(model, "multiflow", args.sparsity, calib[:1])   # warm-up

    def timed(fn):
        t, tc = time.perf_counter(), time.process_time()
        out = fn()
        return time.perf_counter() - t, time.process_time() - tc, out

    fwd, mf = [], []
    for rep in range(args.repeats):
        fwd.append(timed(lambda: [fam.calibration_forward(model, b) for b in calib]))
        mf.append(timed(lambda: prune(model, "multiflow", args.sparsity, calib)))
        log(f"repeat {rep}: forward-only {fwd[-1][0]:.1f}s (cpu {fwd[-1][1]:.1f}s), multiflow {mf[-1][0]:.1f}s (cpu {mf[-1][1]:.1f}s)")
    r = mf[-1][2]
    out = {"batches": args.batches, "batch_size": args.batch_size, "sparsity": args.sparsity, "threads": args.threads,
           "prunable": r.report["prunable"], "data_s": round(data_s, 2),
           "forward_only_s": round(min(x[0] for x in fwd), 2), "multiflow_s": round(min(x[0] for x in mf), 2),
           "forward_only_cpu_s": round(min(x[1] for x in fwd), 2), "multiflow_cpu_s": round(min(x[1] for x in mf), 2)}
    if "snip" not in args.skip:
        w, c, _ = timed(lambda: prune(model, "snip", args.sparsity, calib))
        out["snip_s"], out["snip_cpu_s"] = round(w, 2), round(c, 2)
        log(f"snip {w:.1f}s (cpu {c:.1f}s)")
    if "chita" not in args.skip:
        cmd = [sys.executable, __file__, "--child", "chita", "--batches", str(args.batches), "--batch-size", str(args.batch_size),
               "--sparsity", str(args.sparsity), "--threads", str(args.threads), "--lam", str(args.lam)]
        if args.workdir: cmd += ["--workdir", args.workdir]
        log("chita (child process) ...")
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if res.returncode: log(res.stderr[-3000:]); raise SystemExit(f"CHITA child failed with code {res.returncode}")
        c = json.loads(res.stdout.strip().splitlines()[-1])
        out.update({"chita_s": round(c["chita_s"], 2), "chita_cpu_s": round(c["chita_cpu_s"], 2),
                    "chita_peak_rss_mb": round(c["chita_peak_rss_mb"], 1),
                    "chita_solve_s": round(c["solve_s"], 2), "chita_rss_before_mb": round(c["rss_before_chita_mb"], 1),
                    "chita_kept": c["kept"], "chita_budget": c["budget"], "chita_shortfall": c["shortfall"],
                    "chita_dense_A_mb": round(4 * args.batches * c["prunable"] / 2**20, 1)})
        log(f"chita {out['chita_s']:.1f}s, peak RSS {out['chita_peak_rss_mb']:.0f} MB")
    out["multiflow_over_forward"] = round(out["multiflow_cpu_s"] / out["forward_only_cpu_s"], 3)
    out["multiflow_over_forward_wall"] = round(out["multiflow_s"] / out["forward_only_s"], 3)
    goals = {"multiflow_le_1.25x_forward": out["multiflow_over_forward"] <= 1.25}
    if "snip_s" in out:
        out["snip_over_multiflow"] = round(out["snip_cpu_s"] / out["multiflow_cpu_s"], 2)
        out["snip_over_multiflow_wall"] = round(out["snip_s"] / out["multiflow_s"], 2)
        goals["snip_ge_2.5x_multiflow"] = out["snip_over_multiflow"] >= 2.5
    if "chita_peak_rss_mb" in out: goals["chita_rss_le_2GB"] = out["chita_peak_rss_mb"] <= 2048
    out["goals"] = goals
    out["machine"] = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                      "torch": torch.__version__, "loadavg_start": [round(x, 2) for x in load0],
                      "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(out))

if __name__ == "__main__":
    main()
