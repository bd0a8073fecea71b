"""How fast the explorer's Masks tab answers the sparsity slider on the shipped BLIP.

    python benchmarks/explore_redraw.py [--method multiflow] [--compare omp] [--calib-batches 2] [--batch-size 16]
                                        [--sparsities 0.5 0.6 0.7 0.8 0.9 0.95] [--repeats 3] [--threads N]

The tab (`explore.MasksTab`, computing inline as the tests do) is built once: that first pass loads the model,
draws the calibration batches, scores both methods and finds each task's network (`first_s`). Then the slider is
set to each sparsity in turn, `--repeats` times over: each move re-allocates both methods' masks from the cached
scores and redraws everything the tab shows (heat maps, sparsity and task-network table, dead rows and columns,
the score histogram, the overlap). `redraw_s` is the wall-clock time of one move, from setting the slider's value
to the last widget updated (`time.perf_counter`), `redraw_cpu_s` the CPU time this process spent on it
(`time.process_time`: on a shared machine the wall clock also carries the other jobs' load); `masks_s` / `draw_s`
split the wall time into re-allocation and drawing.
In JupyterLab or Voilà the same work runs in the tab's worker thread, plus the time the browser takes to show the
new images. Goal: under one second. The last line on stdout is one JSON object with the median, 90th percentile
and maximum of each, whether every move took under a second, and the machine (platform, CPU count, torch threads,
load average). On a busy machine, give torch one thread (`--threads 1` or OMP_NUM_THREADS=1): two threads on two
cores that other jobs also use make every torch call wait for the slower one.
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default="blip")
    p.add_argument("--method", default="multiflow")
    p.add_argument("--compare", default="omp", help="second method ('(none)' for none)")
    p.add_argument("--calib-batches", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    a = p.parse_args(argv)
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from vlprune_nb.explore import MasksTab, MaskCache
    t0 = time.perf_counter()
    tab = MasksTab(a.source, a.method, a.sparsities[0], a.compare, a.calib_batches, a.batch_size, cache=MaskCache(), background=False)
    first = time.perf_counter() - t0
    if tab.error: raise SystemExit(f"the tab could not draw: {tab.error}")
    print(f"first pass (load, calibrate, score, task networks, draw): {first:.2f} s", file=sys.stderr)
    moves = []
    for r in range(a.repeats):
        for s in a.sparsities[1:] + a.sparsities[:1]:
            t0, c0 = time.perf_counter(), time.process_time()
            tab.sparsity.value = s
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert tab.error is None and abs(tab.state["overall"][a.method] - s) < 1e-3, (s, tab.error)
            moves.append({"sparsity": s, "redraw_s": dt, "redraw_cpu_s": cpu, **{f"{k}_s": v for k, v in tab.timings.items()}})
            print(f"sparsity {s:.2f}: {dt:.3f} s (masks {tab.timings['masks']:.3f}, draw {tab.timings['draw']:.3f})", file=sys.stderr)
    def stat(k):
        v = sorted(m[k] for m in moves)
        return {"median": round(statistics.median(v), 3), "p90": round(v[min(len(v) - 1, int(0.9 * len(v)))], 3), "max": round(v[-1], 3)}
    out = {"source": a.source, "method": a.method, "compare": a.compare, "calib": [a.calib_batches, a.batch_size],
           "first_s": round(first, 2), "moves": len(moves), "redraw_s": stat("redraw_s"), "redraw_cpu_s": stat("redraw_cpu_s"),
           "masks_s": stat("masks_s"),
           "draw_s": stat("draw_s"), "under_1s": all(m["redraw_s"] < 1 for m in moves),
           "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(), "loadavg": [round(x, 2) for x in os.getloadavg()]}}
    r, c = out["redraw_s"], out["redraw_cpu_s"]
    print(f"redraw after a slider move: median {r['median']:.3f} s, 90th percentile {r['p90']:.3f} s, max {r['max']:.3f} s "
          f"(CPU time: median {c['median']:.3f} s, max {c['max']:.3f} s) over {len(moves)} moves ({a.method} vs {a.compare}, "
          f"{out['machine']['cpus']} CPUs, {out['machine']['torch_threads']} torch threads, load average {out['machine']['loadavg'][0]})")
    print(json.dumps(out))

if __name__ == "__main__":
    main()
