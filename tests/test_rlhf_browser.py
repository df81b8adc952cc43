"""The labelling page in a real headless browser (Debian's chromium + chromedriver, via selenium).

Needs: ``apt-get install -y chromium chromium-driver`` and ``pip install -e .[rlhf]`` (selenium).
Without them the tests skip with a one-line reason; ``.ci/run`` installs them and sets
``TEXTGYM_STRICT_SKIPS=1``, which turns the skip into a failure. Deselect with ``-m "not browser"``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import needs

from textgym.rlhf.store import PreferenceStore

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TEXTGYM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TEXTGYM_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = ("apt-get update && apt-get install -y chromium chromium-driver (Debian), "
           "and pip install -e .[rlhf] (selenium)")
INJECTION = '<img src=x onerror="window.__pwned=1">'
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900"]


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    needs(not missing, f"{' and '.join(missing)}", INSTALL)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        needs(False, "selenium", INSTALL)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download anything
    profile = tempfile.mkdtemp(prefix="textgym-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class Server:
    """``textgym rlhf serve`` in a subprocess that the test can kill like a crash would."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "textgym.cli", "rlhf", "serve", "--db", str(db)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline and self.url is None:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            if "labelling page: " in line:
                self.url = line.split("labelling page: ")[1].split()[0]
        assert self.url and self.url.startswith("http://127.0.0.1:"), self.url

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def wait_for(driver, condition, timeout: float = 15.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def answered(driver) -> int:
    return int(driver.find_element("id", "progress").get_attribute("data-answered") or -1)


def shown_pair(driver) -> str:
    return driver.find_element("tag name", "body").get_attribute("data-pair-id") or ""


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT pair_id, annotator, choice FROM answers ORDER BY seq").fetchall()


def test_label_by_click_and_key_survive_a_killed_server(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    db = tmp_path / "prefs.sqlite"
    store = PreferenceStore(db)
    ids = store.add_pairs([("Say hello.", "Hello there!", "Go away."),
                           ("Describe rain.", "Water falls from clouds.", "Rain is a kind of cheese."),
                           (f"Injected prompt {INJECTION}", f"A {INJECTION}", "<script>window.__pwned=2</script>"),
                           ("Count to three.", "one two three", "three")],
                          metas=[{"display": "Say hello."}, {}, {}, {}])
    server = Server(db)
    try:
        browser.get(server.url)
        wait_for(browser, lambda d: answered(d) == 0 and shown_pair(d) == ids[0])
        assert browser.find_element("id", "cand-a").text == "Hello there!"
        assert "0 / 4 answered" in browser.find_element("id", "progress").text
        browser.find_element("id", "btn-A").click()  # click A on the first pair
        wait_for(browser, lambda d: answered(d) == 1 and shown_pair(d) == ids[1])
        ActionChains(browser).send_keys("b").perform()  # keyboard shortcut B on the next
        wait_for(browser, lambda d: answered(d) == 2 and shown_pair(d) == ids[2])
        assert rows(db) == [(ids[0], "default", "A"), (ids[1], "default", "B")]

        # Generated text is shown as text, never parsed as HTML.
        assert browser.find_element("id", "cand-a").get_attribute("textContent") == f"A {INJECTION}"
        assert browser.find_element("id", "cand-b").get_attribute("textContent") == \
            "<script>window.__pwned=2</script>"
        assert browser.find_elements("css selector", "main img, main script") == []
        assert browser.execute_script("return window.__pwned === undefined")
    finally:
        server.kill()  # a crash mid-way: nothing answered may be lost

    assert rows(db) == [(ids[0], "default", "A"), (ids[1], "default", "B")]
    server = Server(db)
    try:
        browser.get(server.url)  # resume: the page goes on with the first unanswered pair
        wait_for(browser, lambda d: answered(d) == 2 and shown_pair(d) == ids[2])
        # A resubmitted answer (retry, second tab) is not counted twice.
        again = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/answer', {method: 'POST', headers: {'Content-Type': 'application/json'},"
            f" body: JSON.stringify({{pair_id: '{ids[0]}', choice: 'B'}})}})"
            ".then(r => r.json()).then(done);")
        assert again["stored"] is False
        ActionChains(browser).send_keys("t").perform()
        wait_for(browser, lambda d: answered(d) == 3 and shown_pair(d) == ids[3])
        browser.find_element("id", "btn-skip").click()
        wait_for(browser, lambda d: answered(d) == 4 and shown_pair(d) == "")
        assert "All pairs are answered" in browser.find_element("id", "prompt").text
    finally:
        server.kill()
    assert rows(db) == [(ids[0], "default", "A"), (ids[1], "default", "B"), (ids[2], "default", "tie"),
                        (ids[3], "default", "skip")]
    assert [(p.chosen, p.tie) for p in store.preferences()] == [("Hello there!", False),
                                                                 ("Rain is a kind of cheese.", False),
                                                                 (f"A {INJECTION}", True)]
