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
    ci = [l for l in (root / ".ci/run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert ci == [test_cmd]

def test_test_command_checks_notebooks_and_library_in_sync(root):
    test_cmd = commands((root / "README.md").read_text())[1]
    assert test_cmd.index("tests/check_sync.py") < test_cmd.index("nbdev-test") < test_cmd.index("pytest")

def test_readme_result_tables_are_what_the_command_prints(root):
    "README's MULTIFLOW and UPop blocks are generated from the shipped records (vlprune-tables), never typed."
    from vlprune_nb.experiments import load_records
    from vlprune_nb.multiflow_runs import README_BLOCKS, readme_block
    records, text = load_records(root / "data" / "results"), (root / "README.md").read_text()
    for name, make in README_BLOCKS.items():
        assert readme_block(text, name) == make(records), f"README's {name} block is stale: run vlprune-tables --write README.md"
