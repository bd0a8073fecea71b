"""Are the notebooks (the source) and the exported library in sync, with nothing but source in nbs/?

Run from the project root (the test command does): runs `nbdev-export`, then lists what git sees changed or new
under nbs/ and vlprune_nb/. Files that are not the project's source are ignored: HTML or PDF that `jupyter
nbconvert` writes next to a notebook, JupyterLab's `Untitled*.ipynb`, checkpoint folders. Exit 1 with a message
that names every file out of sync and what to do; exit 0 otherwise."""
import fnmatch, subprocess, sys

NOT_SOURCE = ("*.html", "*.pdf", "Untitled*.ipynb", "*/.ipynb_checkpoints/*", ".ipynb_checkpoints/*")

def not_source(path: str) -> bool:
    "Whether an untracked file under nbs/ or vlprune_nb/ is a by-product rather than source."
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path, g) or fnmatch.fnmatch(name, g) for g in NOT_SOURCE) or "__pycache__/" in path

def main() -> int:
    export = subprocess.run(["nbdev-export"], capture_output=True, text=True)
    if export.returncode:
        print("nbdev-export failed:\n" + export.stdout + export.stderr); return 1
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "nbs", "vlprune_nb"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    changed, new = [], []
    for line in status:
        code, path = line[:2], line[3:]
        if code == "??":
            if not not_source(path): new.append(path)
        else: changed.append(path)
    if not (changed or new): return 0
    if changed:
        print("Notebooks and library are out of sync: these files differ from what is committed after nbdev-export:")
        print("".join(f"  {p}\n" for p in changed), end="")
        print("Run `nbdev-export` and commit the notebooks (nbs/) and the modules (vlprune_nb/) together.")
    if new:
        print("These files under nbs/ or vlprune_nb/ are not committed (new source?): commit them or delete them:")
        print("".join(f"  {p}\n" for p in new), end="")
    return 1

if __name__ == "__main__":
    sys.exit(main())
