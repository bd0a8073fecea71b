"""Sweeps on real cluster engines: the same three tiny configurations swept in this process (`workers=1`), on a Dask
`LocalCluster` through `Client(cluster).get_executor()`, and through submitit's local executor
(`submitit.AutoExecutor(folder, cluster="local")`) give the same records. README's cluster paragraph shows exactly
these commands. BLIP retrieval (no METEOR java), 2 fine-tuning steps, 20 test items; OMP and random need no data,
MULTIFLOW with one calibration batch runs the calibration forward in the worker too."""
import os, subprocess
from pathlib import Path

import pytest

from vlprune_nb import experiments as E

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(finetune_steps=2, eval_limit=20)

def tiny_cfgs():
    return [E.run_config("blip", "omp", 0.5, "retrieval", **TINY),
            E.run_config("blip", "random", 0.5, "retrieval", **TINY),
            E.run_config("blip", "multiflow", 0.5, "retrieval", calib_batches=1, **TINY)]

# What a record must have the same wherever it ran: everything but its wall-clock fields. Excluded: `time` (when it was
# written), `prune_s`, `finetune_s`, `prune_report.seconds` and `metrics.eval_s` (seconds taken): they depend on the
# load of the machine, not on the code or the data. Kept: the configuration and key, the masks' file and sha256,
# the metrics, sparsities, parameter counts, the pruning report, the checkpoint's sha256, the commit, the package
# versions and the machine (with its kernel fingerprint): here every worker runs on this machine from this checkout,
# so these must be equal too (on a real cluster the machine would name the worker's node).
WALL_CLOCK = ("time", "prune_s", "finetune_s")

def claims(record: dict) -> dict:
    return {**{k: v for k, v in record.items() if k not in WALL_CLOCK},
            "metrics": {k: v for k, v in record["metrics"].items() if k != "eval_s"},
            "prune_report": {k: v for k, v in record["prune_report"].items() if k != "seconds"}}

@pytest.fixture
def worker_env(monkeypatch):
    "Workers are new processes: they import this checkout's vlprune_nb and read its settings.ini (both inherited from the environment)."
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("VLPRUNE_SETTINGS", str(ROOT / "settings.ini"))

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    "The sweep run in this process, one configuration after the other (the default executor)."
    return E.sweep(tiny_cfgs(), tmp_path_factory.mktemp("local"), progress=False)

def where_workers_import():
    "(vlprune_nb's folder, settings.ini) as a worker process sees them (a lambda: cloudpickle sends it by value)."
    return lambda: (str(Path(__import__("vlprune_nb").__file__).parent), str(__import__("vlprune_nb.config").config.settings().path))

def check_same(records, reference, store):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert [r["key"] for r in records] == [E.run_key(c) for c in tiny_cfgs()]
    assert all(r["git_commit"] == head for r in records), "the workers' records name this checkout's commit"
    for r, ref in zip(records, reference):
        a, b = claims(r), claims(ref)
        assert a == b, (r["key"], {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)})
    assert all(r["masks_sha256"] == E.sha256(store / "masks" / r["masks_file"]) for r in records)
    assert len({r["masks_sha256"] for r in records}) == 3 and len({r["metrics"]["r_mean"] for r in reference}) > 1

def test_reference_sweep_in_this_process(reference):
    assert [r["config"] for r in reference] == tiny_cfgs()
    assert all(r["sparsity"]["overall"] == pytest.approx(0.5, abs=1e-3) for r in reference)

def test_dask_local_cluster_gives_the_same_records(reference, worker_env, tmp_path):
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True) as cluster, Client(cluster) as client:
        executor = client.get_executor()
        assert executor.submit(where_workers_import()).result() == (str(ROOT / "vlprune_nb"), str(ROOT / "settings.ini"))
        worker_pids = set(client.run(os.getpid).values())
        assert os.getpid() not in worker_pids                     # the runs happen in another process
        records = E.sweep(tiny_cfgs(), tmp_path, progress=False, executor=executor)
    check_same(records, reference, tmp_path)

def test_submitit_local_executor_gives_the_same_records(reference, worker_env, tmp_path):
    import submitit
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(timeout_min=120)         # as README: the local default (2 minutes) kills a loaded run
    assert executor.cluster == "local"
    job = executor.submit(where_workers_import())
    assert job.result() == (str(ROOT / "vlprune_nb"), str(ROOT / "settings.ini"))
    records = E.sweep(tiny_cfgs(), tmp_path / "store", progress=False, executor=executor)
    check_same(records, reference, tmp_path / "store")
    logs = sorted((tmp_path / "submitit").glob("*_result.pkl"))
    assert len(logs) == 1 + len(tiny_cfgs()), "each configuration ran as its own submitit job"
