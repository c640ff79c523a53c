"""The page in a real browser: Debian's Chromium (apt-get install chromium), driven headless
by Playwright's Python API, against `pyasp-screen serve` started as a coordinator starts it.

No browser is ever downloaded: Playwright is pointed at /usr/bin/chromium (override with
$PYASP_CHROMIUM). Without that browser these tests fail, they do not skip: .ci/run installs it.

Screenshots: PYASP_SCREENSHOTS=docs/web pytest tests/test_web_browser.py -k screenshot
writes the three pictures docs/web.md shows (an excluded, an undetermined and an eligible
patient); without the variable they go to a temporary folder and are only checked to exist.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"
CHROMIUM = os.environ.get("PYASP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_servers: dict[str, subprocess.Popen] = {}


@pytest.fixture(scope="module")
def server():
    """`pyasp-screen serve --records kb/ct1190b/cases/` on a free port; stopped afterwards."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from pyasp_screen.cli import main; main()", "serve",
                             "--records", str(CASES.relative_to(ROOT)), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"pyasp-screen serve did not start: {proc.communicate()[0]}")
        time.sleep(0.2)
    _servers[url] = proc
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
                    "(apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def test_serve_listens_on_loopback_only(server):
    """Started without --host, the server listens on 127.0.0.1 and nowhere else."""
    import psutil

    proc = psutil.Process(_servers[server].pid)
    listening = {c.laddr.ip for p in [proc, *proc.children(recursive=True)]
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}


def test_open_a_record_read_the_verdict_change_a_value(server, page):
    page.goto(server)
    page.click("text=sle-in-7b-not-met.yaml")
    verdict = page.locator("#overall-verdict")
    assert verdict.inner_text() == "ineligible"
    assert "ANC 0.9 x10^9/L (2026-02-24)" in page.locator("#glance").inner_text()
    assert page.locator("#crit-SLE-IN-7b .status").first.inner_text() == "not met"
    # change a value: the answer appears without a page load
    page.fill("input[name='set.finding'] >> nth=0", "anc")
    page.fill("input[name='set.value'] >> nth=0", "1.2")
    page.locator("input[name='set.value'] >> nth=0").dispatch_event("change")
    after = page.locator("#whatif-result [data-after='overall']")
    after.wait_for()
    assert after.inner_text() == "eligible"
    assert page.locator("#crit-SLE-IN-7b.whatif-changed .whatif-new").inner_text() == "→ met"
    assert verdict.inner_text() == "ineligible"  # as recorded: unchanged
    # another change replaces the answer: a parameter this time
    page.fill("input[name='set.value'] >> nth=0", "")
    page.click("summary:has-text('Parameters')")
    page.fill("#param-anc_min", "1.0")
    page.fill("#param-sle_hb_min", "120")
    page.locator("#param-sle_hb_min").dispatch_event("change")
    page.wait_for_function("document.querySelector('#whatif-result .edits-done') && "
                           "document.querySelector('#whatif-result .edits-done').textContent.includes('sle_hb_min')")
    text = page.locator("#whatif-result").inner_text()
    assert "SLE-IN-7b" not in text or "ineligible" in text
    assert page.locator("#whatif-result [data-after='overall']").inner_text() == "ineligible"


def test_upload_a_record_and_a_fhir_bundle(server, page):
    page.goto(server)
    page.set_input_files("input[type=file]", str(CASES / "sle-eligible.yaml"))
    page.click("button:has-text('Screen')")
    assert page.locator("#overall-verdict").inner_text() == "eligible"
    assert page.locator("#patient-id").inner_text() == "SLE-ELIGIBLE"
    page.goto(server)
    page.set_input_files("input[type=file]", str(ROOT / "tests/data/fhir/Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json"))
    page.click("button:has-text('Screen')")
    assert page.locator("#overall-verdict").inner_text() in ("ineligible", "undetermined")
    assert page.locator("#graph svg").count() == 1


def test_a_bad_upload_shows_the_one_line_error(server, page, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: X\nobservations: [unclosed\n")
    page.goto(server)
    page.set_input_files("input[type=file]", str(bad))
    page.click("button:has-text('Screen')")
    line = page.locator(".errors .error-line").inner_text()
    assert line.startswith("rejected: broken.yaml: patient ?: malformed YAML: line 3")
    assert "Traceback" not in page.content()


def test_whatif_works_without_javascript(server, browser):
    context = browser.new_context(java_script_enabled=False)
    pg = context.new_page()
    pg.goto(server + "record?path=sle-in-7b-not-met.yaml")
    pg.fill("input[name='set.finding'] >> nth=0", "anc")
    pg.fill("input[name='set.value'] >> nth=0", "1.2")
    pg.click("button:has-text('Show what changes')")
    assert pg.locator("#whatif-result [data-after='overall']").inner_text() == "eligible"
    assert pg.locator("#overall-verdict").inner_text() == "ineligible"
    context.close()


SHOTS = {"excluded": "sle-in-7b-not-met.yaml", "undetermined": "sle-in-1-unknown.yaml", "eligible": "sle-eligible.yaml"}


@pytest.mark.parametrize("kind", list(SHOTS))
def test_screenshot(server, page, kind, tmp_path):
    out = Path(os.environ.get("PYASP_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page.goto(server + f"record?path={SHOTS[kind]}")
    expected = {"excluded": "ineligible", "undetermined": "undetermined", "eligible": "eligible"}[kind]
    assert page.locator("#overall-verdict").inner_text() == expected
    if kind == "excluded":  # show the what-if answer too
        page.fill("input[name='set.finding'] >> nth=0", "anc")
        page.fill("input[name='set.value'] >> nth=0", "1.2")
        page.locator("input[name='set.value'] >> nth=0").dispatch_event("change")
        page.locator("#whatif-result [data-after='overall']").wait_for()
    path = out / f"web-{kind}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
