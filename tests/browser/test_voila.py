"""``make app``: the workbench alone in Voila, on loopback with a token, in a real browser.

Runs the Makefile's own command line (``make -n app`` prints it) with a free port and a known token;
checks that a request without the token is refused, that the app renders with its tabs, and that
it trains in the background (the Train tab's progress moves).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_app_serves_the_workbench_alone(sync_playwright, tmp_path):
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, OUTPUT

    pytest.importorskip("voila")
    port, token = _free_port(), uuid.uuid4().hex
    dry = subprocess.run(["make", "-n", "app", f"APP_PORT={port}", f"TOKEN={token}"],
                         cwd=REPO, capture_output=True, text=True, check=True)  # fmt: skip
    line = next(ln for ln in dry.stdout.replace("\\\n", " ").splitlines() if "voila" in ln)
    cmd = shlex.split(line)
    cmd[0] = str(Path(sys.executable).parent / "voila")  # this environment's voila
    assert "--Voila.ip=127.0.0.1" in cmd and f"--token={token}" in cmd
    out = OUTPUT / "test_make_app"
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "voila.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"voila did not start; see {out / 'voila.log'}")
                time.sleep(0.5)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        with pytest.raises(urllib.error.HTTPError) as refused:  # no token: the login page, no app
            urllib.request.build_opener(NoRedirect).open(f"{base}/", timeout=60)
        assert refused.value.code in (302, 401, 403)
        if refused.value.code == 302:
            assert "login" in refused.value.headers.get("Location", "")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=CHROMIUM_ARGS)  # fmt: skip
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            t0 = time.monotonic()
            page.goto(f"{base}/?token={token}", timeout=180_000)
            page.locator(".dl-app .widget-tab").first.wait_for(state="visible", timeout=240_000)
            print(f"voila app visible after {time.monotonic() - t0:.1f} s")
            for title in ("Load logs", "Train", "Review anomalies", "MSE plot", "Workflow graph"):
                page.locator(".lm-TabBar-tabLabel", has_text=title).first.wait_for()
            page.locator(
                ".dl-status", has_text=re.compile("training|trained|detect")
            ).first.wait_for(timeout=240_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(out / "app-mode.png"), full_page=False)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
