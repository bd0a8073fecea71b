import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("VLPRUNE_SETTINGS", str(ROOT / "settings.ini"))
sys.path.insert(0, str(ROOT))

@pytest.fixture
def root() -> Path: return ROOT
