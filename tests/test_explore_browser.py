"""The explorer as a person meets it: `voila nbs/explore.ipynb` on localhost, opened in headless Chromium (Debian's
chromium and chromium-driver, driven by selenium; no browser is downloaded). Move the sparsity slider and check
that the figure and the numbers change; the screenshot is saved to tests/artifacts/explore_voila.png (ignored by
git). Skipped, saying why, where chromium, its driver, selenium or voila is missing (.ci/run installs them)."""
import os, shutil, signal, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    if CHROMIUM is None: return "no chromium on PATH (apt-get install -y chromium chromium-driver)"
    if DRIVER is None: return "no chromedriver on PATH (apt-get install -y chromium-driver)"
    for mod in ("selenium", "voila"):
        try: __import__(mod)
        except ImportError: return f"{mod} is not installed (pip install -e '.[dev]')"
    return None

pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def voila(root, tmp_path):
    "A Voilà server of nbs/explore.ipynb on a free localhost port (its own process group, stopped after the test)."
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1", "VLPRUNE_SETTINGS": str(root / "settings.ini")}
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", "nbs/explore.ipynb", "--no-browser", f"--port={port}",
                             "--Voila.ip=127.0.0.1"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            if proc.poll() is not None: raise RuntimeError(f"voila exited: {(tmp_path / 'voila.log').read_text()[-2000:]}")
            try: urllib.request.urlopen(url + "voila/static/favicon.ico", timeout=2); break
            except urllib.error.HTTPError: break                    # it answers (a page it does not have is fine)
            except OSError: time.sleep(0.5)
        else: raise RuntimeError(f"voila did not answer on {url}: {(tmp_path / 'voila.log').read_text()[-2000:]}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)                      # voila and the kernels it started
        try: proc.wait(20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_voila_page_slider_changes_the_figure(voila, root):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2400"): opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    shot = root / "tests" / "artifacts" / "explore_voila.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.time(); driver.get(voila); print(f"page loaded {time.time() - t0:.1f} s")
        heatmap = lambda: driver.find_element(By.CSS_SELECTOR, "img.vlprune-heatmap")
        summary = lambda: driver.find_element(By.CSS_SELECTOR, ".vlprune-summary").text
        # the first figure: the model loaded, 2 calibration batches of 16, MULTIFLOW and OMP scored, drawn
        WebDriverWait(driver, 240).until(lambda d: d.find_elements(By.CSS_SELECTOR, "img.vlprune-heatmap")
                                         and (heatmap().get_attribute("src") or "").startswith(("blob:", "data:"))
                                         and "90.0 %" in summary())
        print(f"first figure {time.time() - t0:.1f} s")
        assert not [e for e in driver.find_elements(By.CSS_SELECTOR, ".vlprune-error") if e.text], "an error in the page"
        readout = driver.find_element(By.CSS_SELECTOR, ".vlprune-sparsity .widget-readout")
        src, text = heatmap().get_attribute("src"), summary()
        assert readout.text == "0.90"
        handle = driver.find_element(By.CSS_SELECTOR, ".vlprune-sparsity .noUi-handle")
        handle.click()
        for _ in range(10): handle.send_keys(Keys.ARROW_LEFT)    # the slider, moved from 0.90 to 0.80 by keyboard
        WebDriverWait(driver, 5).until(lambda d: readout.text == "0.80")
        WebDriverWait(driver, 60).until(lambda d: heatmap().get_attribute("src") != src and "80.0 %" in summary())
        row = next(l for l in summary().split("\n") if l.startswith("prunable weights"))
        assert summary() != text and "80.0 %" in row and "90.0 %" not in row
        print(f"redrawn {time.time() - t0:.1f} s"); driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
    finally:
        if not shot.exists(): driver.save_screenshot(str(shot))
        driver.quit()
    assert shot.stat().st_size > 10_000
