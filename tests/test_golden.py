"""The training loops, pruning methods, task models and evaluators give, bit for bit, the weights, masks and metrics
recorded in tests/golden/golden.json by tests/golden/capture.py before the family protocol and the accelerate loop
were introduced: refactors must keep the store's records valid (they were computed by the old code)."""
import json, sys
from pathlib import Path
import pytest, torch

HERE = Path(__file__).parent / "golden"
sys.path.insert(0, str(HERE))
import capture

GOLDEN = json.loads((HERE / "golden.json").read_text())

@pytest.fixture(scope="module")
def now():
    torch.set_num_threads(1)
    out = {}
    for fn in (capture.finetune_cases, capture.pruning_cases, capture.structured_cases, capture.pretrain_cases): fn(out)
    return out

@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_same_as_before_the_refactor(now, case):
    assert now[case] == GOLDEN[case], case
