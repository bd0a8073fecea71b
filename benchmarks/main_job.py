"""The main job's phases: where `papermill nbs/run.ipynb out.ipynb -p sparsity 0.9` spends its time.

    python benchmarks/main_job.py [--sparsity 0.9] [--method multiflow] [--threads N] [--profile-steps 5]
                                  [--papermill] [--finetune-steps S] [--eval-limit N]

Runs the job's own code, `experiments.run` on `run_config(family, method, sparsity, task)` (the defaults of
nbs/run.ipynb), into a temporary results store, so nothing is reused (no cached masks, no record) and nothing is
left behind: as from a fresh clone with the world already generated. Each phase is timed where `run` calls it
(load: `families.load`; calibration: `calibration_batches`; pruning: `prune`; fine-tuning: `tasks.finetune`;
evaluation: `tasks.evaluate`, with its ITM re-ranking apart), then the figure (`dense_metrics_for` +
`run_figure`) as the notebook draws it. `--papermill` also times the notebook itself end to end in a child
process (papermill's kernel start and imports included).

Every phase has wall-clock seconds (`time.perf_counter`) and CPU seconds (`time.process_time`, this process;
children's CPU from `RUSAGE_CHILDREN` for the papermill run). On a shared machine the wall clock carries other
jobs' load; with one torch thread the CPU seconds are the work done, so their sum is an *estimate* of the idle
machine's wall time (it leaves out waiting for the disk, which is small here: the world is a few MB of PNGs).

The profile of one fine-tuning step (`--profile-steps` steps outside the loop, same model, batch and loss):
data (images through the processor, tokenising), forward, backward, optimizer; and of the ITM re-ranking:
pairs scored, seconds per 256-pair chunk.

Threads: `--threads` (default `config.torch_threads` for the checkpoint, which is what run.ipynb uses). More than
one thread changes floating-point reduction order, so such a configuration carries `threads` and its own key.
Progress on stderr; the last stdout line is one JSON object, also written to `--out` (default
data/user/benchmarks/main_job.json, ignored by git; the shipped figures are benchmarks/results/main_job.json).
"""
from __future__ import annotations
import argparse, json, os, platform, resource, subprocess, sys, tempfile, threading, time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))


def log(*a): print(*a, file=sys.stderr, flush=True)


class Clock:
    """Accumulated wall and CPU seconds per phase name. A phase entered again while it is open (the ITM re-ranking's
    chunks, scored on several threads at once) is timed once, from its first entry to its last exit: CPU seconds are
    the whole process's, so timing each thread's entry apart would count the same seconds once per thread."""
    def __init__(self): self.t, self.open, self.lock = {}, {}, threading.Lock()
    @contextmanager
    def phase(self, name):
        with self.lock:
            depth, w, c = self.open.get(name, (0, time.perf_counter(), time.process_time()))
            self.open[name] = (depth + 1, w, c)
        try: yield
        finally:
            with self.lock:
                depth, w, c = self.open.pop(name)
                d = self.t.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "calls": 0})
                d["calls"] += 1
                if depth > 1: self.open[name] = (depth - 1, w, c)
                else: d["wall_s"] += time.perf_counter() - w; d["cpu_s"] += time.process_time() - c
    def wrap(self, name, fn):
        def timed(*a, **kw):
            with self.phase(name): return fn(*a, **kw)
        return timed
    def rounded(self): return {k: {kk: round(v, 2) if isinstance(v, float) else v for kk, v in d.items()} for k, d in self.t.items()}


@contextmanager
def patched(pairs):
    "Replace module attributes (module, name, new) for the block."
    saved = [(m, n, getattr(m, n)) for m, n, _ in pairs]
    for m, n, new in pairs: setattr(m, n, new)
    try: yield
    finally:
        for m, n, old in saved: setattr(m, n, old)


def timed_job(cfg: dict, out_dir: Path, fig_dir: Path) -> dict:
    "Run the job on `cfg` into `out_dir` with every phase timed; returns the phases and the ITM re-ranking's share."
    from vlprune_nb import experiments, families, tasks
    from vlprune_nb.families import BlipEncodeMixin, XVLMForPretraining
    from vlprune_nb.figures import run_figure
    clock, in_eval = Clock(), [False]
    itm_classes = [c for c in (BlipEncodeMixin, XVLMForPretraining)]

    def itm_wrapper(orig):
        def itm_logits(self, *a, **kw):
            if not in_eval[0]: return orig(self, *a, **kw)
            with clock.phase("evaluation: ITM re-ranking"): return orig(self, *a, **kw)
        return itm_logits

    def evaluate(*a, **kw):
        in_eval[0] = True
        try:
            with clock.phase("evaluation"): return tasks_evaluate(*a, **kw)
        finally: in_eval[0] = False

    tasks_evaluate, tasks_itm_workers, workers_used = tasks.evaluate, tasks.itm_workers, []
    def itm_workers():
        workers_used.append(tasks_itm_workers()); return workers_used[-1]

    pairs = [(tasks, "itm_workers", itm_workers), (families, "load", clock.wrap("load", families.load)),
             (experiments, "calibration_batches", clock.wrap("calibration", experiments.calibration_batches)),
             (experiments, "prune", clock.wrap("pruning", experiments.prune)),
             (tasks, "finetune", clock.wrap("fine-tuning", tasks.finetune)), (tasks, "evaluate", evaluate)]
    pairs += [(c, "itm_logits", itm_wrapper(c.itm_logits)) for c in itm_classes]
    with patched(pairs):
        with clock.phase("run (total)"): record = experiments.run(cfg, out_dir=out_dir, progress=False)
    with clock.phase("figure"):
        dense = experiments.dense_metrics_for(cfg, out_dir)
        run_figure(record, experiments.layer_sparsity(record, out_dir), dense, fig_dir=fig_dir)
    return {"phases": clock.rounded(), "metrics": record["metrics"], "key": record["key"],
            "threads_used": record["machine"]["cpu_threads"], "itm_workers_used": max(workers_used, default=1)}


def step_profile(cfg: dict, steps: int) -> dict:
    "Median seconds of one fine-tuning step's parts (data, forward, backward, optimizer) over `steps` steps at the job's batch size."
    import statistics, torch
    from vlprune_nb import families, tasks
    from vlprune_nb.config import settings
    model = families.load(cfg["family"])
    tm = tasks.task_model(model, cfg["task"]).train()
    bs = settings().get("tasks", "batch_size", int)
    batches = tasks.task_batches(cfg["task"], tasks.task_data(cfg["task"], "train"), bs, 0)
    opt, gen, parts = torch.optim.AdamW(tm.parameters(), lr=1e-5), torch.Generator().manual_seed(0), []
    for _ in range(steps + 1):                                    # the first step warms up and is dropped
        items = next(batches); t0 = time.perf_counter()
        tasks._images(tm, [x["image"] for x in items]); tasks._text(tm, [x.get("caption", "") for x in items])
        t1 = time.perf_counter()
        loss = tasks.task_loss(tm, cfg["task"], items, gen); t2 = time.perf_counter()
        loss.backward(); t3 = time.perf_counter()
        opt.step(); opt.zero_grad(set_to_none=True); t4 = time.perf_counter()
        parts.append({"data": t1 - t0, "forward": (t2 - t1) - (t1 - t0), "backward": t3 - t2, "optimizer": t4 - t3})
    med = {k: statistics.median(p[k] for p in parts[1:]) for k in parts[0]}
    total = sum(med.values())
    return {"steps": steps, "batch_size": bs, "seconds": {k: round(v, 4) for k, v in med.items()},
            "share": {k: round(v / total, 3) for k, v in med.items()}, "step_s": round(total, 4)}


def papermill_run(args, threads: int) -> dict:
    "Wall and CPU seconds (children included) of the notebook itself, into a temporary store."
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "papermill", str(ROOT / "nbs" / "run.ipynb"), str(Path(d) / "out.ipynb"), "-p", "sparsity",
               str(args.sparsity), "-p", "method", args.method, "-p", "out_dir", str(Path(d) / "results"), "-p", "fig_dir",
               str(Path(d) / "figures"), "-p", "threads", str(threads), "--cwd", str(ROOT / "nbs")]
        for k, v in (("finetune_steps", args.finetune_steps), ("eval_limit", args.eval_limit)):
            if v is not None: cmd += ["-p", k, str(v)]
        ru0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode: log(res.stderr[-3000:]); raise SystemExit(f"papermill failed with code {res.returncode}")
    return {"wall_s": round(time.perf_counter() - t, 1),
            "cpu_s": round((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), 1)}


def machine(load0) -> dict:
    import torch
    from vlprune_nb.config import usable_cpus, busy_cpus
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": usable_cpus(), "torch": torch.__version__, "loadavg_start": [round(x, 2) for x in load0],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()], "busy_cpus_end": busy_cpus(),
            "shared": "other jobs ran beside this one" if max(load0[0], os.getloadavg()[0]) > 1.5 else "idle"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="blip"); ap.add_argument("--method", default="multiflow")
    ap.add_argument("--sparsity", type=float, default=0.9); ap.add_argument("--task", default="retrieval")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: config.torch_threads for the checkpoint)")
    ap.add_argument("--finetune-steps", type=int, default=None, help="(for tests) fewer steps than the budget")
    ap.add_argument("--eval-limit", type=int, default=None, help="(for tests) the first N test records only")
    ap.add_argument("--profile-steps", type=int, default=5, help="steps of the fine-tuning step profile (0: skip)")
    ap.add_argument("--papermill", action="store_true", help="also time the notebook end to end")
    ap.add_argument("--out", default=str(ROOT / "data" / "user" / "benchmarks" / "main_job.json"),
                    help="JSON written here ('' : none); the shipped figures are benchmarks/results/main_job.json, "
                         "replaced only by passing it here")
    args = ap.parse_args()
    import torch
    from vlprune_nb.config import torch_threads
    from vlprune_nb.experiments import run_config, checkpoint_params
    load0 = os.getloadavg()
    threads = args.threads or torch_threads(checkpoint_params(args.family))
    cfg = run_config(args.family, args.method, args.sparsity, args.task, finetune_steps=args.finetune_steps,
                     eval_limit=args.eval_limit, threads=threads)
    log(f"{args.family} {args.method} {args.sparsity} {args.task}: {threads} thread(s)")
    with tempfile.TemporaryDirectory() as d:
        w, c = time.perf_counter(), time.process_time()
        job = timed_job(cfg, Path(d) / "results", Path(d) / "figures")
        job["total"] = {"wall_s": round(time.perf_counter() - w, 2), "cpu_s": round(time.process_time() - c, 2)}
    log("phases: " + ", ".join(f"{k} {v['wall_s']:.1f}s (cpu {v['cpu_s']:.1f}s)" for k, v in job["phases"].items()))
    out = {"config": {k: cfg[k] for k in ("family", "method", "sparsity", "task", "finetune_steps", "eval_limit")},
           "threads": threads, **job}
    if threads == 1:
        out["idle_estimate_s"] = round(job["total"]["cpu_s"], 1)
        out["idle_estimate_note"] = "estimate: CPU seconds of the one-thread job (= its wall time on an idle core), papermill start not included"
    if args.profile_steps:
        torch.set_num_threads(threads)
        out["step_profile"] = step_profile(cfg, args.profile_steps)
        log(f"fine-tuning step: {out['step_profile']['seconds']}")
    if args.papermill:
        log("papermill ..."); out["papermill"] = papermill_run(args, threads)
        log(f"papermill: {out['papermill']}")
    out["machine"] = machine(load0)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
