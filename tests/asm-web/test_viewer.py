"""The web viewer in real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium): the list, a running session's text
streaming in live, a reload mid-run with nothing doubled, submitting a prompt,
cancelling a run, a phone-width screen. Screenshots go to ``$VIEWER_SCREENSHOTS``
(``nox -s web_screenshots`` writes them to docs/) or to the test's tmp dir."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from _asm_web_helpers import Gate, live_server
from asm_web import Client, WebOptions, hash_token, new_token
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.usefixtures("isolated")

T = TypeVar("T")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Browser:
    """A headless Chromium; every call runs in a thread so the server (same trio run) goes on."""

    def __init__(self, shots: Path) -> None:
        assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
            "the viewer tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver "
            "(.ci/run installs them)"
        )
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(argument)
        options.add_argument("--window-size=1100,900")
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.shots = shots

    async def do(self, call: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(functools.partial(call, *args))

    async def wait(self, condition: Callable[[webdriver.Chrome], Any], timeout: float = 30) -> Any:
        return await self.do(
            WebDriverWait(
                self.driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
            ).until,
            condition,
        )

    async def text(self, css: str) -> str:
        return await self.do(lambda: self.driver.find_element(By.CSS_SELECTOR, css).text)

    async def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        assert await self.do(self.driver.save_screenshot, str(self.shots / name))

    def close(self) -> None:
        self.driver.quit()


def text_is(css: str, expected: str) -> Callable[[webdriver.Chrome], bool]:
    def check(driver: webdriver.Chrome) -> bool:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return len(found) == 1 and found[0].text == expected

    return check


async def test_the_viewer_in_headless_chromium(tmp_path: Path) -> None:
    shots = Path(os.environ.get("VIEWER_SCREENSHOTS") or tmp_path / "shots")
    gate = Gate()
    browser = await trio.to_thread.run_sync(Browser, shots)
    try:
        async with live_server(gate, WebOptions(port=0)) as url, Client(url) as client:
            done = await client.create_session(agent_id="reviewer")
            first = await client.submit(done.id, "Summarize the release notes")
            gate.release(("think", "The notes list three fixes."), "Three fixes: ", "the parser, ")
            gate.release("the retry loop and the docs.")
            gate.finish()
            await client.wait_until_done(first.id)
            session = await client.create_session(agent_id="writer")
            run = await client.submit(session.id, "Write a haiku about logs")
            gate.release("Lines ")

            # the list: both sessions, each with its status
            await browser.do(browser.driver.get, f"{url}/")
            item = f'#sessions li[data-session="{session.id}"]'
            await browser.wait(text_is(f"{item} .badge", "active"))
            await browser.wait(text_is(f'#sessions li[data-session="{done.id}"] .who', "reviewer · gated"))
            await browser.shot("web-list.png")

            # open the running session: its text streams in as the run goes
            await browser.do(lambda: browser.driver.find_element(By.CSS_SELECTOR, f"{item} a").click())
            answer = f'.answer[data-run="{run.id}"] .text'
            await browser.wait(text_is(answer, "Lines "))
            gate.release("of quiet ")
            await browser.wait(text_is(answer, "Lines of quiet "))
            assert await browser.text("#connection") == "live"

            # reload mid-run: the same text once, then it goes on
            await browser.do(browser.driver.refresh)
            await browser.wait(text_is(answer, "Lines of quiet "))
            gate.release("scroll past")
            await browser.wait(text_is(answer, "Lines of quiet scroll past"))
            await browser.shot("web-session.png")

            # cancel the run from the page
            cancel = f'button[data-cancel="{run.id}"]'
            await browser.do(lambda: browser.driver.find_element(By.CSS_SELECTOR, cancel).click())
            await browser.wait(text_is(f'#runs tr[data-run="{run.id}"] .badge', "cancelled"))
            assert (await client.get_run(run.id)).status.value == "cancelled"

            # submit a prompt from the page
            def type_prompt() -> None:
                browser.driver.find_element(By.ID, "prompt").send_keys("And one about tests")
                browser.driver.find_element(By.ID, "send").click()

            await browser.do(type_prompt)
            await browser.wait(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 2)
            second = (await client.list_runs(session.id))[1]
            assert second.input.prompt == "And one about tests"
            gate.release("Green checks ", "at dawn")
            gate.finish()
            await browser.wait(text_is(f'.answer[data-run="{second.id}"] .text', "Green checks at dawn"))
            await browser.wait(text_is(f'#runs tr[data-run="{second.id}"] .badge', "completed"))
            assert await browser.text(f'#runs tr[data-run="{second.id}"] td:nth-child(3)') != "0 / 0"

            # the finished session: thinking folded away, tokens per run
            await browser.do(browser.driver.get, f"{url}/#/s/{done.id}")
            await browser.wait(
                text_is(
                    f'.answer[data-run="{first.id}"] .text', "Three fixes: the parser, the retry loop and the docs."
                )
            )
            assert await browser.text(".thinking summary") == "Thinking"

            # every form control has a label; on a phone-width screen nothing scrolls sideways
            unlabelled = await browser.do(
                browser.driver.execute_script,
                "return [...document.querySelectorAll('input, select, textarea')]"
                ".filter(e => !e.labels || !e.labels.length).map(e => e.id)",
            )
            assert unlabelled == []
            await browser.do(browser.driver.set_window_size, 390, 844)
            await browser.do(browser.driver.get, f"{url}/#/s/{session.id}")
            await browser.wait(text_is(f'.answer[data-run="{second.id}"] .text', "Green checks at dawn"))
            overflow = await browser.do(
                browser.driver.execute_script, "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0
            await browser.shot("web-phone.png")
    finally:
        await trio.to_thread.run_sync(browser.close)


async def test_the_viewer_asks_for_the_token_of_a_server_that_needs_one(tmp_path: Path) -> None:
    """With tokens configured the page's API calls get 401: it asks for the token, then shows
    the sessions; a wrong token is asked for again."""
    token = new_token()
    gate = Gate()
    browser = await trio.to_thread.run_sync(Browser, tmp_path / "shots")
    try:
        options = WebOptions(port=0, tokens=(hash_token(token),))
        async with live_server(gate, options) as url, Client(url, token=token) as client:
            session = await client.create_session(agent_id="guarded")
            await browser.do(browser.driver.get, f"{url}/")
            await browser.wait(lambda driver: driver.find_element(By.ID, "token-form").is_displayed())

            def enter(text: str) -> None:
                field = browser.driver.find_element(By.ID, "token")
                field.clear()
                field.send_keys(text)
                field.submit()

            await browser.do(enter, "not-the-token")
            await browser.wait(lambda driver: driver.find_element(By.ID, "token-form").is_displayed())
            await browser.do(enter, token)
            await browser.wait(text_is(f'#sessions li[data-session="{session.id}"] .who', "guarded · gated"))
            assert not await browser.do(lambda: browser.driver.find_element(By.ID, "token-form").is_displayed())
    finally:
        await trio.to_thread.run_sync(browser.close)
