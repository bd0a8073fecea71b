"README's two set-up commands are what CI and users run: check them against .ci/run and the package."
import re

def commands(readme: str) -> list[str]:
    "The shell commands in README's 'Set up' section (fenced bash blocks)."
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]

def test_two_commands_and_ci_runs_the_test_command(root):
    cmds = commands((root / "README.md").read_text())
    assert len(cmds) == 2, cmds
    run_cmd, test_cmd = cmds
    assert "papermill nbs/run.ipynb" in run_cmd and run_cmd.startswith("pip install torch==2.13.0")
    ci = ci_commands(root)
    assert ci and ci[-1] == test_cmd, "the last command of .ci/run is README's test command, verbatim"
    assert all(installs_only(c) for c in ci[:-1]), [c for c in ci[:-1] if not installs_only(c)]

def ci_commands(root) -> list[str]:
    "The command lines of .ci/run (not comments, `set` or `cd`)."
    return [l for l in (root / ".ci/run").read_text().splitlines() if l.strip() and not l.startswith(("#", "set ", "cd "))]

_INSTALL = re.compile(r"apt-get update|apt-get install -y( [A-Za-z0-9.+-]+)+|pip install( [^&|;<>`$]+)+")

def installs_only(line: str) -> bool:
    "Whether a command line only installs: `apt-get update`, `apt-get install -y <packages>`, `pip install ...`, joined by &&."
    return all(_INSTALL.fullmatch(part.strip()) for part in line.split("&&"))

def test_installs_only_tells_installs_from_other_commands():
    assert installs_only("apt-get update && apt-get install -y chromium chromium-driver")
    assert installs_only('pip install torch==2.13.0 && pip install -e ".[dev]"')
    assert not installs_only("apt-get update && python -m pytest -q tests")
    assert not installs_only("pip install x; rm -rf /") and not installs_only("apt-get install -y chromium && make")

def test_test_command_checks_notebooks_and_library_in_sync(root):
    test_cmd = commands((root / "README.md").read_text())[1]
    assert test_cmd.index("tests/check_sync.py") < test_cmd.index("nbdev-test") < test_cmd.index("pytest")

def test_generated_blocks_are_what_the_command_prints(root, shipped_store):
    "README's and docs' result blocks are generated from the shipped records (vlprune-tables), never typed."
    from vlprune_nb.experiments import load_records
    from vlprune_nb.multiflow_runs import README_BLOCKS, readme_block, blocks_in
    records = load_records(shipped_store)
    expected = {"README.md": ["multiflow-headline", "multiflow-claims", "upop-headline"],
                "docs/results.md": ["multiflow-tables", "upop-tables"], "docs/benchmark.md": ["dense-metrics"]}
    for path, names in expected.items():
        text = (root / path).read_text()
        assert blocks_in(text) == names, (path, blocks_in(text))
        for name in names:
            assert readme_block(text, name) == README_BLOCKS[name](records), \
                f"{path}'s {name} block is stale: run vlprune-tables --write README.md docs/results.md docs/benchmark.md"

def test_readme_is_short(root):
    "README is for users: at most 250 lines; the full tables and the history live in docs/."
    assert len((root / "README.md").read_text().splitlines()) <= 250

def test_scale_table_and_main_job_time_are_what_the_script_renders(root):
    "docs/speed.md's scale block and README's main-job time come from the committed benchmarks/results JSON."
    import sys
    sys.path.insert(0, str(root / "benchmarks"))
    import scale
    assert (root / "docs/speed.md").read_text() == scale.render_readme(root / "benchmarks/results/scale.json", root / "docs/speed.md"), \
        "docs/speed.md's scale table is stale: run python benchmarks/scale.py --readme"
    assert (root / "README.md").read_text() == scale.render_main_job_time(root / "benchmarks/results/main_job.json", root / "README.md"), \
        "README's main-job time is stale: run python benchmarks/scale.py --readme"
