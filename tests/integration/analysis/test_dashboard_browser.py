"""A real browser on a real ``hpo dashboard``: the study page shows what ``hpo report`` wrote.

Headless Chromium from Debian's packages, driven by selenium through the packaged
chromedriver (an explicit path, so selenium never tries to download a driver or a browser).
It does not skip when Chromium is missing: ``.ci/run`` installs it, and a silent skip would
hide a dashboard nobody looked at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import SYNTHETIC_STUDY, hpo_cli
from optuna_dashboard import get_note

from hpo.store import open_storage

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
NAME = "browser-v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hpo dashboard exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"hpo dashboard did not listen on port {port} within {timeout}s")


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "the browser test needs Debian's chromium and chromium-driver: "
        "apt-get install -y chromium chromium-driver (.ci/run does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,2400"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture
def dashboard(tmp_path):
    """A study run by ``hpo run``, reported by ``hpo report``, served by ``hpo dashboard``."""
    study_file = tmp_path / "study.py"
    study_file.write_text(SYNTHETIC_STUDY.format(name=NAME, per_value=2, seed=0,
                                                 phase="explore", sleep=0.0))
    journal = tmp_path / "j.log"
    for args in (("run", study_file, "--workers", "2"),
                 ("report", study_file, "--out", tmp_path / "r")):
        result = hpo_cli(*args, "--storage", journal, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=NAME, storage=open_storage(str(journal)))
    port = _free_port()
    log = open(tmp_path / "dashboard.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "hpo", "dashboard", "--storage", str(journal), "--port", str(port),
         "--artifact-dir", str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "HPO_STORAGE"})
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}", study
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_study_page_shows_trials_roles_and_the_verdict_note(dashboard, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, study = dashboard
    note = get_note(study)
    verdict = next(line for line in note.splitlines()
                   if line.startswith("**No winner") or " wins**" in line)
    browser = _browser(tmp_path / "chromium-profile")
    try:
        def text() -> str:
            return browser.find_element(By.TAG_NAME, "body").text

        def shows(*needles: str):
            return lambda _: all(n in text() for n in needles)

        # The study page: its name, the best trial, and the study's user attributes.
        browser.get(url)
        WebDriverWait(browser, 60).until(shows(NAME, "Best Trial", "Study User Attributes", "goal"))
        # The attribute table shows five rows a page; the roles are further on.
        for _ in range(5):
            if '"optimizer": "scientific"' in text():
                break
            browser.find_elements(By.CSS_SELECTOR, "button[aria-label='next page']")[0].click()
        WebDriverWait(browser, 10).until(shows('"optimizer": "scientific"',
                                               '"learning_rate": "nuisance"', '"sleep": "fixed"'))
        browser.save_screenshot(str(tmp_path / "study.png"))

        # The trials: all four, with their states.
        browser.get(f"{url}/trials")
        WebDriverWait(browser, 60).until(shows("4 Trials", "Trial 0", "Trial 3", "Complete"))
        # The study's metric by its name (hpo sets it on the Optuna study), not "Objective 0".
        browser.get(f"{url}/analytics")
        WebDriverWait(browser, 60).until(shows("EDF for loss"))
        assert "Objective 0" not in text()
        browser.get(f"{url}/trials")
        WebDriverWait(browser, 60).until(shows("4 Trials"))
        browser.save_screenshot(str(tmp_path / "trials.png"))

        # The note hpo report wrote, with the verdict.
        browser.get(f"{url}/note")
        WebDriverWait(browser, 60).until(shows(f"hpo report: {NAME}", "Verdict"))
        plain = verdict.replace("**", "").replace("`", "")
        assert plain[:60] in text()
        assert "Search-space boundaries" in text() and "Enough trials?" in text()
        browser.save_screenshot(str(tmp_path / "note.png"))
    finally:
        browser.quit()
    for shot in ("study.png", "trials.png", "note.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
