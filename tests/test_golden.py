"""The training loops, pruning methods, task models and evaluators give, bit for bit, the weights, masks and metrics
recorded in tests/golden/golden.json by tests/golden/capture.py before the family protocol and the accelerate loop
were introduced, on the same CPU kernels: refactors must keep the store's records valid (they were computed by the
old code)."""
import json, sys
from pathlib import Path
import pytest, torch

HERE = Path(__file__).parent / "golden"
sys.path.insert(0, str(HERE))
import capture

def golden_cases() -> dict:
    """The cases of the capture made on this machine's torch CPU capability; else of the capture whose capability
    was not recorded (the first one, made on a non-AVX2 machine like CI's of 2026-12-01)."""
    captures, cap = json.loads((HERE / "golden.json").read_text())["captures"], torch.backends.cpu.get_cpu_capability()
    return ([c for c in captures if c["cpu_capability"] == cap] or [c for c in captures if c["cpu_capability"] is None])[0]["cases"]

GOLDEN = golden_cases()

@pytest.fixture(scope="module")
def now():
    torch.set_num_threads(1)
    out = {}
    for fn in (capture.finetune_cases, capture.pruning_cases, capture.structured_cases, capture.pretrain_cases): fn(out)
    return out

@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_same_as_before_the_refactor(now, case):
    assert now[case] == GOLDEN[case], case
