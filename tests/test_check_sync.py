"The test command's sync check: it names what is out of sync and ignores what is not the project's source."
import json, shutil, subprocess, sys

def clone(root, tmp_path):
    "A clone of the committed project with this tree's check script (what CI runs on a fresh clone)."
    d = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(d)], check=True)
    shutil.copy(root / "tests" / "check_sync.py", d / "tests" / "check_sync.py")
    return d

def check(d):
    return subprocess.run([sys.executable, "tests/check_sync.py"], cwd=d, capture_output=True, text=True)

def test_by_products_in_nbs_are_ignored(root, tmp_path):
    d = clone(root, tmp_path)
    (d / "nbs" / "01_data.html").write_text("<html></html>")              # jupyter nbconvert --to html
    (d / "nbs" / "Untitled.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (d / "nbs" / ".ipynb_checkpoints").mkdir()
    (d / "nbs" / ".ipynb_checkpoints" / "run-checkpoint.ipynb").write_text("{}")
    r = check(d)
    assert r.returncode == 0, r.stdout + r.stderr

def test_an_unexported_change_is_named(root, tmp_path):
    d = clone(root, tmp_path)
    nb = d / "nbs" / "00_config.ipynb"
    data = json.loads(nb.read_text())
    cell = next(c for c in data["cells"] if c["cell_type"] == "code" and "def sha256" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]) + "\n\ndef added_but_not_exported(): return 1"
    nb.write_text(json.dumps(data, indent=1))
    subprocess.run(["git", "commit", "-qam", "edit a notebook only"], cwd=d, check=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": __import__("os").environ["PATH"]})
    r = check(d)
    assert r.returncode == 1
    assert "vlprune_nb/config.py" in r.stdout and "nbdev-export" in r.stdout and "commit" in r.stdout

def test_a_new_notebook_left_uncommitted_is_named(root, tmp_path):
    d = clone(root, tmp_path)
    shutil.copy(d / "nbs" / "run.ipynb", d / "nbs" / "50_new.ipynb")
    r = check(d)
    assert r.returncode == 1 and "nbs/50_new.ipynb" in r.stdout
