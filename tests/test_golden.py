"""The training loops, pruning methods, task models and evaluators give what tests/golden/golden.json recorded.

Two modes, chosen by the machine's fingerprint (`config.machine_fingerprint`: torch's CPU capability, the CPU, the
kernel variables, torch and transformers):
- same-machine mode, where a capture has this fingerprint: every case bit for bit (digests, sketches, metrics). The
  captures' digests equal those of commit 34b18e6, before the family protocol and the accelerate loop, so refactors
  keep the store's records valid;
- cross-machine mode everywhere else, against the first capture: what is exact on any kernels stays exact (the masks
  of the methods that do not move, kept counts), and floats are compared within the tolerances of
  tests/golden/tolerances.json, each a safety factor above the largest difference measured between two kernel sets.
The mode and the capture are printed at the end of the pytest run (conftest.py), never skipped."""
import json, sys
from pathlib import Path
import pytest, torch

from vlprune_nb.config import machine_fingerprint

HERE = Path(__file__).parent / "golden"
sys.path.insert(0, str(HERE))
import capture

CAPTURES = json.loads((HERE / "golden.json").read_text())["captures"]
TOLERANCES = json.loads((HERE / "tolerances.json").read_text())

def choose(captures: list[dict], fingerprint: dict) -> tuple[str, dict]:
    "('same-machine', the capture of this fingerprint), else ('cross-machine', the first capture)."
    same = [c for c in captures if capture.fingerprint_key(c["fingerprint"]) == capture.fingerprint_key(fingerprint)]
    return ("same-machine", same[0]) if same else ("cross-machine", captures[0])

MODE, GOLD = choose(CAPTURES, machine_fingerprint())
MODE_LINE = (f"golden: {MODE} mode, against the capture of commit {GOLD['commit']} on "
             f"{GOLD['fingerprint']['cpu']['model']} {GOLD['fingerprint']['cpu_capability']}"
             f"{' ' + str(GOLD['fingerprint']['kernel_env']) if GOLD['fingerprint']['kernel_env'] else ''}")

def failures(case: str, now: dict, gold: dict, mode: str) -> list[str]:
    "What differs between `now` and `gold` for `case` in `mode` (empty when they agree)."
    if mode == "same-machine": return [] if now == gold else [f"not bit-identical: {sorted(k for k in gold if now.get(k) != gold[k])}"]
    return capture.check_case(case, now, gold, TOLERANCES)

def test_mode_is_chosen_by_the_whole_fingerprint():
    here = machine_fingerprint()
    assert choose(CAPTURES, here)[0] == MODE
    other = {**here, "kernel_env": {**here["kernel_env"], "ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"}}
    assert choose(CAPTURES, other) == ("cross-machine", CAPTURES[0])
    assert choose(CAPTURES, CAPTURES[1]["fingerprint"]) == ("same-machine", CAPTURES[1])

@pytest.fixture(scope="module")
def now():
    return capture.compute_all()

@pytest.mark.parametrize("case", sorted(GOLD["cases"]))
def test_same_as_before_the_refactor(now, case):
    assert not (why := failures(case, now[case], GOLD["cases"][case], MODE)), f"{case} ({MODE} mode): {why}"

@pytest.mark.parametrize("change", [dict(steps=4), dict(lr=2e-4)], ids=["one more step", "another learning rate"])
def test_a_deliberate_change_fails_in_both_modes(change):
    "One extra fine-tuning step or another learning rate is caught by the exact comparison and by the tolerances."
    torch.set_num_threads(1)
    case = "finetune/vit/classification"
    changed = capture.finetune_case("vit", "classification", **change)
    for cap in CAPTURES:
        assert failures(case, changed, cap["cases"][case], "same-machine"), cap["fingerprint"]
        assert failures(case, changed, cap["cases"][case], "cross-machine"), cap["fingerprint"]

def test_the_tolerances_hold_between_the_captures():
    "Each capture is within the tolerances of the other: they were measured from these two."
    a, b = CAPTURES[:2]
    assert not {c: w for c in a["cases"] if (w := capture.check_case(c, b["cases"][c], a["cases"][c], TOLERANCES))}
