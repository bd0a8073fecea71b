import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("VLPRUNE_SETTINGS", str(ROOT / "settings.ini"))
sys.path.insert(0, str(ROOT))

@pytest.fixture
def root() -> Path: return ROOT

@pytest.fixture
def shipped_store(root, tmp_path) -> Path:
    "A copy of the results store as committed (git-tracked files only), so records a running sweep adds do not count."
    import shutil, subprocess
    files = subprocess.run(["git", "ls-files", "data/results"], cwd=root, capture_output=True, text=True).stdout.split()
    store = tmp_path / "shipped_store"
    for f in files:
        (store / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / f, store / f)
    return store / "data" / "results"

def pytest_terminal_summary(terminalreporter):
    "Say which mode the golden test ran in, and against which capture (tests/test_golden.py)."
    golden = sys.modules.get("test_golden")
    if golden is not None: terminalreporter.write_line(golden.MODE_LINE)
