"""Headless Chromium (Debian's) through Playwright, as the machine notes prescribe."""

from __future__ import annotations

import shutil
from contextlib import contextmanager


from tests.requirements import require

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium_page(viewport=(1280, 900)):
    """A page of a fresh headless Chromium; skips when chromium is not installed."""
    require(bool(shutil.which("chromium")), "Debian's chromium",
            "apt-get install chromium (bash scripts/dev test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.console_errors = []
            page.dialogs = []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.console_errors.append(str(e)))
            page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
            # nothing leaves the machine: any request that is not file:// or 127.0.0.1 is refused
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith(("file://", "http://127.0.0.1", "data:"))
                       else route.abort())
            yield page
        finally:
            browser.close()
