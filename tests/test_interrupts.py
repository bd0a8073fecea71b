"""Issue 20, what a careful user does to a run: interrupts (Ctrl-C, SIGTERM) of a parallel captioning sweep while METEOR's
java runs, a sweep's parent killed outright, two sweeps on one store, a results path that is a file, and the command line's
--force, lock, checks before the work and `python -m`. Real processes and signals, tiny budgets."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "VLPRUNE_PROGRESS": "off", "PYTHONFAULTHANDLER": "1"}
GRID = "import sys; from vlprune_nb.experiments import grid_cli; grid_cli()"
SWEEP = ["--families", "blip", "--methods", "omp", "random", "--sparsities", "0.6", "--tasks", "captioning",
         "--finetune-steps", "2", "--eval-limit", "8", "--workers", "2"]


def children(pid: int) -> dict[int, str]:
    "Every live descendant of `pid` (pid → command name), from /proc."
    kids: dict[int, list[int]] = {}
    names = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try:
            stat = (d / "stat").read_text()
            name, rest = stat[stat.index("(") + 1: stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            if rest[0] == "Z": continue
            kids.setdefault(int(rest[1]), []).append(int(d.name)); names[int(d.name)] = name
        except (OSError, ValueError, IndexError): continue
    out, todo = {}, [pid]
    while todo:
        for k in kids.get(todo.pop(), []): out[k] = names[k]; todo.append(k)
    return out


def alive(pids) -> list[int]:
    "Those of `pids` still running (zombies count as gone)."
    left = []
    for p in pids:
        try:
            if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z": left.append(p)
        except (OSError, IndexError): pass
    return left


def start_grid(store: Path, *extra) -> subprocess.Popen:
    "`vlprune-grid` as a user starts it, in a session (process group) of its own, as a terminal would."
    return subprocess.Popen([sys.executable, "-c", GRID, *SWEEP, "--out-dir", str(store), *extra], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(cond, timeout: float, poll: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        got = cond()
        if got: return got
        time.sleep(poll)
    return None


def interrupt(p: subprocess.Popen, sig, what: str) -> tuple[float, str]:
    "Send `sig` to `p`'s process group and wait: (seconds it took to end, its stderr); kill all and fail after 60 s."
    t0 = time.time()
    os.killpg(p.pid, sig)
    try: _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        left = children(p.pid)
        for q in [p.pid, *left]:                            # PYTHONFAULTHANDLER: each Python process dumps its stacks
            try: os.kill(q, signal.SIGABRT)
            except ProcessLookupError: pass
        try: _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired: err = ""
        for q in [p.pid, *left]:
            try: os.kill(q, signal.SIGKILL)
            except ProcessLookupError: pass
        pytest.fail(f"{what} did not end within 60 s of {sig.name}; processes: {left}; their stacks:\n{err[-6000:]}")
    return time.time() - t0, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_of_a_two_worker_captioning_sweep_during_meteor(sig, tmp_path):
    """The signal goes to the sweep's process group (what Ctrl-C does; SIGTERM as `kill` sends it to a job) while java runs:
    everything ends within 30 s, nothing is left (processes, locks, temporary files), the report names what finished,
    and the same command resumes and completes the sweep."""
    store = tmp_path / "store"
    p = start_grid(store)
    seen: dict[int, str] = {}
    def java():
        seen.update(children(p.pid))
        return p.poll() is None and any("java" in n for n in children(p.pid).values())
    assert wait_for(java, 240), f"no java ran; the sweep ended with {p.poll()}: {p.stderr.read() if p.poll() is not None else ''}"
    seen.update(children(p.pid))
    took, err = interrupt(p, sig, "the sweep")
    print(f"{sig.name}: exit {p.returncode} after {took:.1f} s")
    assert took < 30 and p.returncode == 128 + sig, (took, p.returncode, err[-2000:])
    assert wait_for(lambda: not alive(seen), 5, 0.1) or not alive(seen), {q: seen[q] for q in alive(seen)}
    assert f"sweep interrupted by {sig.name}" in err and "run the same sweep again to resume" in err, err[-2000:]
    leftovers = [f.name for f in store.rglob(".*")]
    assert not leftovers, leftovers
    done = len(list(store.glob("*.json")))
    if sig == signal.SIGTERM: return                        # resuming is the same after either signal: once is enough
    r = subprocess.run([sys.executable, "-c", GRID, *SWEEP, "--out-dir", str(store)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3 and len(list(store.glob("*.json"))) == 3, (done, r.stderr[-2000:])


def test_sweep_parent_killed_outright_takes_its_workers_along(tmp_path):
    "SIGKILL to the parent alone (nothing can run in it): its workers and their java end too, within seconds."
    p = start_grid(tmp_path / "store")
    assert wait_for(lambda: len([n for n in children(p.pid).values() if n.startswith("python")]) >= 2, 240), "no workers"
    time.sleep(3)
    kids = children(p.pid)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    gone = wait_for(lambda: not alive(kids), 20, 0.2)
    left = alive(kids)
    for q in left: os.kill(q, signal.SIGKILL)
    assert gone and not left, {q: kids[q] for q in left}


def test_results_path_that_is_a_file_is_refused_before_any_run(tmp_path):
    f = tmp_path / "results"; f.write_text("not a folder")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", GRID, *SWEEP, "--out-dir", str(f)], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "--out-dir" in r.stderr and str(f) in r.stderr and "is a file" in r.stderr, r.stderr[-1500:]
    assert f.read_text() == "not a folder" and time.time() - t0 < 60


def test_two_sweeps_on_one_store_share_the_work(tmp_path):
    """Two one-worker sweeps of the same grid at once: both end well, each reports every configuration, and each record
    is written once (a configuration run by both would be written twice: a new file, a new inode, seen by watching)."""
    store = tmp_path / "store"
    args = ["--families", "blip", "--methods", "omp", "--sparsities", "0.6", "--tasks", "captioning",
            "--finetune-steps", "2", "--eval-limit", "8", "--workers", "1", "--out-dir", str(store)]
    runs = [subprocess.Popen([sys.executable, "-c", GRID, *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    inodes: dict[str, set] = {}
    end = time.time() + 900
    while any(r.poll() is None for r in runs) and time.time() < end:
        for f in store.glob("[!.]*.json"):
            try: inodes.setdefault(f.name, set()).add(f.stat().st_ino)
            except FileNotFoundError: pass
        time.sleep(0.02)
    outs = [r.communicate(timeout=60) for r in runs]
    assert all(r.returncode == 0 for r in runs), [o[1][-1500:] for o in outs]
    assert len(inodes) == 2 and all(len(o[0].splitlines()) == 2 for o in outs), (inodes, outs)
    twice = [k for k, v in inodes.items() if len(v) > 1]
    assert not twice, f"run by both sweeps: {twice}"
    assert not list(store.rglob(".*")), list(store.rglob(".*"))


def test_interrupt_of_the_main_job(tmp_path):
    """Ctrl-C (SIGINT to papermill's process group, the kernel included) while the main job fine-tunes: papermill and its
    kernel end within 30 s, the configuration's lock is released and no record or temporary file is left, and the
    same command then computes the run."""
    store, out = tmp_path / "store", tmp_path / "out.ipynb"
    cmd = [sys.executable, "-m", "papermill", "nbs/run.ipynb", str(out), "-p", "method", "omp", "-p", "sparsity", "0.5",
           "-p", "finetune_steps", "400", "-p", "eval_limit", "20", "-p", "out_dir", str(store),
           "-p", "fig_dir", str(tmp_path / "figs"), "-p", "run_dense", "False"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    seen: dict[int, str] = {}
    def claimed():                                          # the run holds its configuration's lock: it is fine-tuning
        seen.update(children(p.pid))
        return p.poll() is None and any(store.rglob("*.lock"))
    assert wait_for(claimed, 240), f"the run never claimed its configuration; exit {p.poll()}"
    time.sleep(3)
    seen.update(children(p.pid))
    took, _ = interrupt(p, signal.SIGINT, "the main job")
    print(f"main job SIGINT: exit {p.returncode} after {took:.1f} s")
    assert took < 30 and p.returncode != 0, (took, p.returncode)
    assert wait_for(lambda: not alive(seen), 5, 0.1) or not alive(seen), {q: seen[q] for q in alive(seen)}
    assert not list(store.glob("*.json")) and not [f.name for f in store.rglob(".*")], list(store.rglob("*"))
    r = subprocess.run([*cmd[:-6], "-p", "fig_dir", str(tmp_path / "figs"), "-p", "run_dense", "False", "-p",
                        "finetune_steps", "2"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and len(list(store.glob("*.json"))) == 1, r.stderr[-2000:]
