"""Headless Chromium for console tests: Debian's chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium_page(width: int = 1280, height: int = 900, *, bypass_csp: bool = True,
                  args: tuple[str, ...] = ()) -> Iterator[object]:
    """A Playwright page in headless Chromium, closed on exit; skips the test when either is missing.

    ``bypass_csp=False`` keeps the console's Content-Security-Policy in force (no ``wait_for_function`` then);
    ``args`` are more command-line switches of Chromium."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make system-deps-test installs it)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic", *args])
        try:
            # The console's Content-Security-Policy forbids eval, which Playwright's wait_for_function uses.
            yield browser.new_page(viewport={"width": width, "height": height}, bypass_csp=bypass_csp)
        finally:
            browser.close()
