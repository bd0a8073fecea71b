"""Progress under papermill, as a user of the main job sees it: the bars are drawn on the terminal papermill runs
in (the kernel's own stderr), and the saved notebook gets one line per bar, its final state, instead of one stream
output per refresh."""
import json, os, subprocess, sys

import nbformat


def test_papermill_bars_go_to_the_terminal_and_one_line_to_the_notebook(root, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "python3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell("import time\nfrom vlprune_nb.config import progress, progress_mode\n"
                                          "print(progress_mode())\n"
                                          "for _ in progress(range(60), desc='steps', mininterval=0.05): time.sleep(0.02)")]
    src, out = tmp_path / "bars.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1"}
    env.pop("VLPRUNE_PROGRESS", None)
    run = subprocess.run([sys.executable, "-m", "papermill", str(src), str(out)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = json.loads(out.read_text())["cells"][0]["outputs"]
    stdout = "".join(t for o in outputs if o.get("name") == "stdout" for t in o["text"])
    stderr = "".join(t for o in outputs if o.get("name") == "stderr" for t in o["text"])
    assert stdout == "text\n", "a headless kernel: text bars, not widgets"
    assert stderr.count("\n") == 1 and stderr.startswith("steps: 100%") and "60/60" in stderr, stderr
    assert not [o for o in outputs if o["output_type"] == "display_data"] and "IProgress" not in stderr
    terminal = run.stderr.replace("\r", "\n")
    assert terminal.count("steps:") >= 3 and "60/60" in terminal, "the terminal shows the bar as it moves"


def test_progress_mode_follows_the_frontend(root):
    """A kernel driven as JupyterLab drives it (execute requests that allow stdin) draws widget bars; driven as
    papermill/nbclient drives it (no stdin), text bars. Voilà (nbclient too) marks its kernels with VOILA_* variables."""
    from jupyter_client.manager import start_new_kernel
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1"}
    env.pop("VLPRUNE_PROGRESS", None)
    def modes(extra_env):
        km, kc = start_new_kernel(kernel_name="python3", env={**env, **extra_env}, cwd=str(root))
        try:
            out = {}
            for stdin in (True, False):
                seen = []
                kc.execute_interactive("from vlprune_nb.config import progress_mode; print(progress_mode())", allow_stdin=stdin,
                                       timeout=120, output_hook=lambda m: seen.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
                                       stdin_hook=lambda m: None)
                out[stdin] = "".join(seen).strip()
            return out
        finally:
            kc.stop_channels(); km.shutdown_kernel(now=True)
    assert modes({}) == {True: "widget", False: "text"}


def test_voila_kernels_draw_widgets(monkeypatch):
    "Voilà executes with nbclient (no stdin) but shows widgets: its VOILA_* variables say so."
    from types import SimpleNamespace
    from vlprune_nb import config
    monkeypatch.delenv("VLPRUNE_PROGRESS", raising=False)
    monkeypatch.setattr(config, "_kernel", lambda: SimpleNamespace(_allow_stdin=False))
    assert config.progress_mode() == "text"
    monkeypatch.setenv("VOILA_BASE_URL", "/")
    assert config.progress_mode() == "widget"
