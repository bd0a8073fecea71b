"""Data-parallel fine-tuning: two processes started by `accelerate launch` (gloo, on the CPU) fine-tune the shipped
BLIP on NLVR with OMP masks. Every rank must hold the pruned weights at exactly zero and end with the same weights
as the other; and since each rank trains on its half of every global batch and DDP averages the gradients, the
result must be the one-process fine-tuning of the same global batches, up to float rounding.

`accelerate launch --cpu --num_processes 2` starts one process where no MPI is installed (accelerate runs CPU
processes through mpirun); `--multi_gpu` is its torchrun launcher, which starts the two processes on any machine,
and `finetune(device="cpu")` makes them a gloo group on the CPU."""
import json, os, socket, subprocess, sys, time
import pytest, torch
from safetensors.torch import load_file, save_file

STEPS, BATCH = 3, 8

RANK_SCRIPT = """
import json, sys, time, torch
from safetensors.torch import save_file
from vlprune_nb import families, pruning, tasks
from vlprune_nb.config import seed_everything
from vlprune_nb.train import Loop
torch.set_num_threads(1)
out, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = families.load("blip")
masks = dict(pruning.prune(model, "omp", 0.5, device="cpu"))
seed_everything(0)                                  # as finetune does: the same new head
before = {n: p.detach().clone() for n, p in tasks.task_model(model, "nlvr").named_parameters()}
seen, task_loss = [], tasks.task_loss
tasks.task_loss = lambda tm, task, items, generator=None: (seen.append([x["sentence"] + "|" + str(x["images"][0]) for x in items]),
                                                           task_loss(tm, task, items, generator))[1]
t0 = time.time()
tm = tasks.finetune(model, "nlvr", masks=masks, steps=steps, batch_size=batch, device="cpu", progress=False)
loop = Loop("cpu")
params = dict(tm.named_parameters())
rank = {"rank": loop.process_index, "processes": loop.num_processes, "seconds": round(time.time() - t0, 1),
        "pruned_nonzero": sum(int((params[n].detach()[~m] != 0).sum()) for n, m in tm.masks.items()),
        "pruned": sum(int((~m).sum()) for m in tm.masks.values()),
        "changed": sum(int((p.detach() != before[n]).sum()) for n, p in params.items() if n in before), "seen": seen}
save_file({n: p.detach().contiguous() for n, p in tm.state_dict().items()}, f"{out}/weights_{loop.process_index}.safetensors")
json.dump(rank, open(f"{out}/rank_{loop.process_index}.json", "w"))
"""

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    from conftest import ROOT as root
    out = tmp_path_factory.mktemp("ddp")
    (out / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "VLPRUNE_PROGRESS": "off"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           str(out / "rank.py"), str(out), str(STEPS), str(BATCH)]
    t0 = time.time()
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ranks = [json.loads((out / f"rank_{r}.json").read_text()) for r in (0, 1)]
    weights = [load_file(str(out / f"weights_{r}.safetensors")) for r in (0, 1)]
    return ranks, weights, time.time() - t0

def test_two_processes_hold_masks_and_agree(two_ranks):
    ranks, weights, seconds = two_ranks
    print(f"two-process fine-tuning: {seconds:.0f} s in all, {[r['seconds'] for r in ranks]} s in finetune per rank")
    assert [(r["rank"], r["processes"]) for r in ranks] == [(0, 2), (1, 2)]
    assert all(r["pruned"] > 0 and r["pruned_nonzero"] == 0 for r in ranks), ranks     # masks held on every rank
    assert all(r["changed"] > r["pruned"] for r in ranks), ranks                       # and training moved the rest
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "the ranks' weights differ"

def test_each_rank_takes_its_half_of_every_global_batch(two_ranks):
    from vlprune_nb import tasks
    ranks, _, _ = two_ranks
    data = tasks.task_data("nlvr", "train")
    batches = tasks.task_batches("nlvr", data, BATCH, 0)
    glob = [[x["sentence"] + "|" + str(x["images"][0]) for x in next(batches)] for _ in range(STEPS)]
    assert [ranks[0]["seen"][s] + ranks[1]["seen"][s] for s in range(STEPS)] == glob
    assert all(len(r["seen"]) == STEPS and all(len(b) == BATCH // 2 for b in r["seen"]) for r in ranks)

def test_two_processes_train_like_one_on_the_global_batch(two_ranks):
    from vlprune_nb import families, pruning, tasks
    from vlprune_nb.config import seed_everything
    _, weights, _ = two_ranks
    torch.set_num_threads(1)
    model = families.load("blip")
    masks = dict(pruning.prune(model, "omp", 0.5, device="cpu"))
    seed_everything(0); start = tasks.task_model(model, "nlvr").state_dict()
    one = tasks.finetune(model, "nlvr", masks=masks, steps=STEPS, batch_size=BATCH, device="cpu", progress=False).state_dict()
    moved = sum(float((one[k] - start[k]).float().norm() ** 2) for k in one if k in start) ** 0.5
    apart = sum(float((one[k] - weights[0][k]).float().norm() ** 2) for k in one) ** 0.5
    # NLVR's loss draws nothing at random, so halves averaged by DDP are the global batch's gradient up to rounding
    print(f"two processes vs one: {apart:.3g} apart after moving {moved:.3g}")
    assert moved > 0 and apart < 1e-4 * moved, (apart, moved)
