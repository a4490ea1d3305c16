"""Logging in to the console in headless Chromium: wrong and right passwords, lockout, logout, a one-time
password changed at the first login, and a session that ends by itself (short idle timeout)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.browser import chromium_page
from tests.stack import service
from tests.station_support import PASSWORD, add_user, browser_login

pytestmark = [pytest.mark.broker, pytest.mark.browser]
IDLE_S = 3


@pytest.fixture(scope="module")
def console(broker, tmp_path_factory):
    """A station process with a 3 s idle timeout and its own database; yields (base URL, database URL)."""
    import asyncio
    import uuid

    from vigie.core.kafka import apply_topics
    from vigie.core.settings import KafkaSettings
    from vigie.core.topics import Topics

    tmp = tmp_path_factory.mktemp("login")
    kafka = KafkaSettings(bootstrap=broker, namespace=f"t{uuid.uuid4().hex[:10]}.")
    asyncio.run(apply_topics(kafka, Topics(kafka.namespace).all(["main"])))
    db = f"sqlite:///{tmp}/accounts.db"
    for name in ("op-main", "op-lock", "op-idle"):
        add_user(db, name, "operator", "main")
    with service(kafka, "station", "--database", db, "--session-idle-s", str(IDLE_S), log_dir=tmp) as (_, port):
        yield f"http://127.0.0.1:{port}", db, kafka


def _submit(page, user: str, password: str) -> str:  # noqa: ANN001
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("#login-button")
    page.locator("#message").wait_for(state="visible")
    return page.locator("#message").inner_text()


def test_login_wrong_password_lockout_and_logout_in_the_browser(console) -> None:
    """The console sends a visitor to the login page; a wrong password says so and stays there; five failures
    lock the account (the page says for how long); the right password opens the console, which shows who is
    logged in; Log out goes back to the login page and the console is closed again."""
    base, _, _ = console
    with chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.wait_for_url(base + "/login")
        assert _submit(page, "op-main", "Not-my-password-1") == "wrong user name or password"
        assert page.url == base + "/login"
        for _ in range(5):
            _submit(page, "op-lock", "Not-my-password-1")
        page.fill("#password", "")
        assert "too many failed logins" in _submit(page, "op-lock", PASSWORD)
        browser_login(page, base, "op-main")
        assert page.locator("#whoami").inner_text() == "op-main (operator)"
        page.locator("#link.online").wait_for()  # the event stream is live
        page.click("#logout")
        page.wait_for_url(base + "/login")
        page.goto(base + "/")
        page.wait_for_url(base + "/login")
        assert not errors, errors


def test_session_ends_by_itself_after_the_idle_timeout(console) -> None:
    """A console left alone past the idle timeout goes back to the login page by itself (its event stream
    is no activity)."""
    base, _, _ = console
    with chromium_page() as page:
        browser_login(page, base, "op-idle")
        page.locator("#link.online").wait_for()
        page.wait_for_url(base + "/login", timeout=(IDLE_S + 12) * 1000)


def test_one_time_password_is_changed_at_the_first_login(console) -> None:
    """``vigie users add --one-time`` prints a password; the first login with it asks for a new one (the policy
    refuses a weak one, saying why), then opens the console; the one-time password no longer works."""
    base, db, kafka = console
    done = subprocess.run([sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace,
                           "users", "add", "newbie", "--roles", "operator", "--stations", "main", "--one-time",
                           "--database", db], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    once = re.search(r": (\S+)$", done.stdout.strip()).group(1)
    with chromium_page() as page:
        page.goto(base + "/login")
        page.fill("#user", "newbie")
        page.fill("#password", once)
        page.click("#login-button")
        page.locator("#change-form").wait_for()
        page.fill("#new-password", "newbie-2026-Pass")
        page.fill("#new-password-again", "newbie-2026-Pass")
        page.click("#change-button")
        page.locator("#message").wait_for(state="visible")
        assert "user name" in page.locator("#message").inner_text()
        page.fill("#new-password", "Quiet-Harbour-Light-7")
        page.fill("#new-password-again", "Quiet-Harbour-Light-7")
        page.click("#change-button")
        page.wait_for_url(base + "/")
        page.locator("#whoami").wait_for()
        assert page.locator("#whoami").inner_text() == "newbie (operator)"
        page.click("#logout")
        page.wait_for_url(base + "/login")
        assert _submit(page, "newbie", once) == "wrong user name or password"
