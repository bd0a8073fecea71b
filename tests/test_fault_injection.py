"""Fault injection: corrupt and truncate every kind of file the library trusts (weights, masks, records, annotation
files), kill sweeps mid-run and mid-write and resume them, and feed each bad parameter. Every case must end in a
clear error (naming the file, tensor or parameter) or in a correct resume: nothing finished lost, nothing bogus
counted. The tiny runs use the shipped ViT (classification, 2 fine-tuning steps, 20 test images)."""
import json, os, random, shutil, signal, subprocess, sys, time, warnings
from pathlib import Path

import pytest
import torch

from vlprune_nb import data, experiments as E, families, tasks
from vlprune_nb.config import atomic_write, write_json, read_json, sha256
from vlprune_nb.masks import load_masks, save_masks
from vlprune_nb.pruning import prune

TINY = dict(finetune_steps=2, eval_limit=20)

def tiny_cfgs():
    "Three small ViT runs: dense, OMP (no data) and MULTIFLOW (1 calibration batch)."
    return [E.run_config("vit", "dense", 0.0, "classification", **TINY),
            E.run_config("vit", "omp", 0.75, "classification", **TINY),
            E.run_config("vit", "multiflow", 0.75, "classification", calib_batches=1, **TINY)]

def copy_checkpoint(tmp_path, family="vit") -> Path:
    d = tmp_path / family
    shutil.copytree(families.checkpoint_dir(family), d)
    return d

def flip_bytes(path: Path, offset_from_end: int = 100, n: int = 8):
    "Corrupt a file in place, keeping its size (as a bad disk or a partial copy would)."
    b = bytearray(path.read_bytes())
    for i in range(n): b[-offset_from_end + i] ^= 0xFF
    path.write_bytes(bytes(b))

def truncate(path: Path, keep: float = 0.5):
    b = path.read_bytes(); path.write_bytes(b[: int(len(b) * keep)])

# ---------------------------------------------------------------- weights
def test_weights_corrupted_in_place_are_refused(tmp_path):
    d = copy_checkpoint(tmp_path)
    flip_bytes(d / "model.safetensors")
    with pytest.raises(ValueError, match=r"model\.safetensors.*sha256.*manifest"):
        families.load(d)

def test_weights_truncated_are_refused_naming_the_file(tmp_path):
    d = copy_checkpoint(tmp_path)
    truncate(d / "model.safetensors")
    (d / "manifest.json").unlink()                                 # no digest to compare: the reader must say it
    with pytest.raises(ValueError, match=str(d / "model.safetensors")):
        families.load(d)

def test_weights_with_a_tensor_missing_are_refused_naming_it(tmp_path):
    from safetensors.torch import load_file, save_file
    d = copy_checkpoint(tmp_path)
    w = load_file(str(d / "model.safetensors"))
    name = next(k for k in w if k.endswith("attention.query.weight"))
    save_file({k: v for k, v in w.items() if k != name}, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"missing: .*layers?\.0\..*(q_proj|query)\.weight"):   # the model's name for it
        families.load(d)

# ---------------------------------------------------------------- masks
@pytest.fixture
def vit_masks(tmp_path):
    model = families.load("vit")
    masks = prune(model, "omp", 0.5).masks
    return model, masks, save_masks(masks, tmp_path / "m.safetensors")

def test_masks_truncated_are_refused_naming_the_file(vit_masks):
    model, _, f = vit_masks
    truncate(f, 0.6)
    with pytest.raises(ValueError, match=str(f)):
        load_masks(f, model)

def test_masks_of_the_wrong_shape_or_name_stop_fine_tuning(vit_masks):
    model, masks, _ = vit_masks
    name = next(iter(masks))
    bad_shape = {**masks, name: masks[name][:, :-1]}
    with pytest.raises(ValueError, match=rf"{name}.*shape"):
        tasks.finetune(model, "classification", masks=bad_shape, steps=1, data=tasks.task_data("classification", "train")[:8])
    with pytest.raises(ValueError, match="vit.nonexistent.weight"):
        tasks.finetune(model, "classification", masks={**masks, "vit.nonexistent.weight": masks[name]}, steps=1)
    with pytest.raises(ValueError, match="bool"):
        tasks.finetune(model, "classification", masks={**masks, name: masks[name].float()}, steps=1)

def test_masks_changed_in_the_store_make_their_records_untrusted(tmp_path):
    cfg = tiny_cfgs()[1]
    rec = E.run(cfg, tmp_path, progress=False)
    mfile = tmp_path / "masks" / rec["masks_file"]
    flip_bytes(mfile, offset_from_end=40, n=4)
    assert not E.is_done(cfg, tmp_path)
    good, skipped = E.scan_store(tmp_path)
    assert [p.name for p, _ in skipped] == [f"{rec['key']}.json"] and "sha256" in skipped[0][1]
    again = E.run(cfg, tmp_path, progress=False)                    # pruned again, the same masks as before
    assert strip(again) == strip(rec)

# ---------------------------------------------------------------- records
def test_records_truncated_or_edited_are_recomputed_not_counted(tmp_path):
    cfgs = tiny_cfgs()[:2]
    first = E.sweep(cfgs, tmp_path, progress=False)
    p0, p1 = (E.record_path(c, tmp_path) for c in cfgs)
    truncate(p0, 0.5)                                              # a record cut short
    edited = read_json(p1); edited["config"]["finetune_steps"] = 300; write_json(p1, edited)   # a config edited by hand
    with pytest.warns(UserWarning, match="skipped 2 file"):
        assert E.load_records(tmp_path, current=False) == []
    again = E.sweep(cfgs, tmp_path, progress=False)
    assert [strip(r) for r in again] == [strip(r) for r in first]
    assert E.scan_store(tmp_path)[1] == []

def test_a_kill_during_a_write_leaves_the_old_record_and_a_skipped_temporary(tmp_path):
    cfg = tiny_cfgs()[0]
    rec = E.run(cfg, tmp_path, progress=False)
    path = E.record_path(cfg, tmp_path)
    script = (f"import time; from vlprune_nb.config import atomic_write\n"
              f"def slow(t):\n    t.write_text('{{\"kind\": \"unstructured\", \"config\"'); time.sleep(60)\n"
              f"atomic_write({str(path)!r}, slow)\n")
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(Path(E.__file__).parents[1])})
    deadline = time.time() + 60
    while not list(tmp_path.glob(f".{path.name}.*")) and time.time() < deadline: time.sleep(0.1)
    time.sleep(0.3); child.send_signal(signal.SIGKILL); child.wait()
    assert read_json(path) == rec                                  # the finished record is intact
    good, skipped = E.scan_store(tmp_path)
    assert [r["key"] for _, r in good] == [rec["key"]] and "temporary" in skipped[0][1]
    assert E.is_done(cfg, tmp_path) and E.table(E.load_records(tmp_path, current=False), "top1")

def strip(r):
    "What a record claims, without its timings (which differ from run to run)."
    return {**{k: r[k] for k in ("key", "config", "masks_sha256", "sparsity", "task_sparsity")},
            "metrics": {k: v for k, v in r["metrics"].items() if k != "eval_s"}}

SWEEP = """
import sys, torch
torch.set_num_threads(1)
from vlprune_nb import experiments as E
cfgs = [E.run_config("vit", "dense", 0.0, "classification", finetune_steps=2, eval_limit=20),
        E.run_config("vit", "omp", 0.75, "classification", finetune_steps=2, eval_limit=20),
        E.run_config("vit", "multiflow", 0.75, "classification", calib_batches=1, finetune_steps=2, eval_limit=20)]
E.sweep(cfgs, sys.argv[1], progress=False)
"""

def test_a_sweep_killed_at_random_points_resumes_to_the_uninterrupted_result(tmp_path):
    "Kill right after the OMP run's pruning (so during its fine-tuning), then at random times, then let it finish."
    reference = E.sweep(tiny_cfgs(), tmp_path / "reference", progress=False)
    store, rng, kills = tmp_path / "killed", random.Random(0), 0
    env = {**os.environ, "PYTHONPATH": str(Path(E.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    for attempt in range(5):                                         # three kills, then a run left to finish
        child = subprocess.Popen([sys.executable, "-c", SWEEP, str(store)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:                                             # the OMP masks are written: fine-tuning runs now
            while child.poll() is None and not list((store / "masks").glob("vit_omp_*.safetensors")): time.sleep(0.05)
        elif attempt < 4:
            try: child.wait(timeout=rng.uniform(2, 10))
            except subprocess.TimeoutExpired: pass
        else: child.wait(timeout=600)
        if child.poll() is not None: continue                       # finished (or the last run)
        child.send_signal(signal.SIGKILL); child.wait(); kills += 1
        for _, r in E.scan_store(store)[0]: assert strip(r) in map(strip, reference)   # only finished, true records
    assert kills >= 1 and child.returncode == 0
    resumed = E.sweep(tiny_cfgs(), store, progress=False)
    assert [strip(r) for r in resumed] == [strip(r) for r in reference]

# ---------------------------------------------------------------- annotation files
def test_annotation_files_truncated_or_missing_keys_name_file_entry_and_key(tmp_path):
    images = [{"filepath": "val2014", "filename": "a.jpg", "imgid": 0, "sentences": [{"raw": "a cat"}], "split": "test"},
              {"filepath": "val2014", "filename": "b.jpg", "imgid": 1, "sentences": [{"raw": "a dog"}]}]   # no split
    f = tmp_path / "dataset_coco.json"
    f.write_text(json.dumps({"images": images}))
    with pytest.raises(ValueError, match=r"dataset_coco\.json.*1.*'split'"):
        data.read_karpathy(f, "test", tmp_path)
    images[1]["split"] = "test"; images[1]["sentences"] = [{"tokens": ["a"]}]                      # no raw
    f.write_text(json.dumps({"images": images}))
    with pytest.raises(ValueError, match=r"dataset_coco\.json.*'raw'"):
        data.read_karpathy(f, "test", tmp_path)
    truncate(f, 0.5)
    with pytest.raises(ValueError, match=r"dataset_coco\.json: malformed JSON"):
        data.read_karpathy(f, "test", tmp_path)
    (tmp_path / "nlvr.json").write_text(json.dumps([{"images": ["a.jpg", "b.jpg"], "label": "True"}]))  # no sentence
    with pytest.raises(ValueError, match=r"nlvr\.json.*'sentence'"):
        data.read_nlvr(tmp_path / "nlvr.json", tmp_path)

# ---------------------------------------------------------------- bad parameters
def _vit(): return families.load("vit")

BAD = [  # (what, call, the words the error must contain)
    ("run_config eval_limit<0", lambda: E.run_config(eval_limit=-995), "eval_limit"),
    ("run_config eval_limit str", lambda: E.run_config(eval_limit="100"), "eval_limit"),
    ("run_config itm_k<0", lambda: E.run_config(itm_k=-1), "itm_k"),
    ("run_config seed str", lambda: E.run_config(seed="a"), "seed"),
    ("run_config calib_batches=0", lambda: E.run_config(calib_batches=0), "calib_batches"),
    ("run_config unknown option", lambda: E.run_config(method="chita", lamda=1.0), "lamda"),
    ("finetune steps<0", lambda: tasks.finetune(_vit(), "classification", steps=-5), "steps"),
    ("evaluate limit<0", lambda: tasks.evaluate(_vit(), "classification", limit=-995), "limit"),
    ("calibration batch size<0", lambda: data.calibration_batches(_vit(), 1, -4), "batch_size"),
    ("calibration n=0", lambda: data.calibration_batches(_vit(), 0), "n_batches"),
]

@pytest.mark.parametrize("what, call, words", BAD, ids=[b[0] for b in BAD])
def test_bad_parameters_are_named(what, call, words):
    with pytest.raises(ValueError, match=words):
        call()

def test_chita_with_an_invalid_lambda_leaves_no_gradient_file(tmp_path):
    model = _vit()
    calib = data.calibration_batches(model, 2, 4)
    with pytest.raises(ValueError, match="lam"):
        prune(model, "chita", 0.5, calib, lam=-1.0, workdir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []

def test_calibration_batches_with_wrong_keys_or_image_size_are_named():
    model = _vit()
    calib = data.calibration_batches(model, 1, 4)
    labels = calib[0]["labels"]
    with pytest.raises(ValueError, match=r"missing keys \['pixel_values'\]"):
        prune(model, "multiflow", 0.5, [{"images": calib[0]["pixel_values"], "labels": labels}])
    with pytest.raises(ValueError, match="size|shape"):
        prune(model, "multiflow", 0.5, [{"pixel_values": torch.zeros(4, 3, 48, 48), "labels": labels}])

def test_non_finite_calibration_is_named_for_gradient_methods():
    model = _vit()
    calib = data.calibration_batches(model, 1, 4)
    calib[0]["pixel_values"][0, 0, 0, 0] = float("nan")
    for method in ("snip", "multiflow"):
        with pytest.raises(ValueError, match=rf"{method}.*(non-finite|NaN|nan)"):
            prune(model, method, 0.5, calib)
