"""Debian's Chromium for the browser tests: one launcher, the page's own error and origin checks, screenshots.

Screenshots go to ``test-artifacts/browser/`` at the top of the checkout (gitignored; CI keeps the folder as
the run's artifacts), or to ``$CALLCENTER_ARTIFACTS/browser``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("CALLCENTER_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")


def artifact(name: str) -> Path:
    folder = ARTIFACTS / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@dataclass
class Watched:
    """A page plus what it did wrong: script errors and requests to anywhere but the service."""

    page: Any
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.outside == [], self.outside  # nothing fetched from anywhere else
        assert self.errors == [], self.errors  # no script errors


class SharedChromium:
    """One headless Chromium (and its Playwright driver) for the test session: starting both took ~1 s a page.
    Every page still starts from nothing: it gets a browser context of its own (a fresh profile: no cookies,
    storage or cache of another page), closed with the page. Started on first use, again if it went away;
    :meth:`close` at the end of the session (tests/browser/conftest.py)."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._browser: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def browser(self) -> Any:
        from playwright.async_api import async_playwright

        if self._loop is not asyncio.get_running_loop():  # Playwright's objects belong to the loop they began in
            await self.close()
        if self._playwright is None:
            self._playwright = await async_playwright().start()
            self._loop = asyncio.get_running_loop()
        if self._browser is None or not self._browser.is_connected():
            self._browser = await self._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                                                   headless=True)
        return self._browser

    async def close(self) -> None:
        browser, playwright, self._browser, self._playwright, self._loop = (self._browser, self._playwright,
                                                                            None, None, None)
        with contextlib.suppress(Exception):
            if browser is not None:
                await browser.close()
            if playwright is not None:
                await playwright.stop()


SHARED = SharedChromium()


@asynccontextmanager
async def chromium_page(base_url: str, *, width: int = 1360, height: int = 860) -> AsyncIterator[Watched]:
    """A fresh headless Chromium page (a context of its own in the session's Chromium) whose every request must
    stay on ``base_url``."""
    context = await (await SHARED.browser()).new_context(viewport={"width": width, "height": height},
                                                         accept_downloads=True)
    try:
        page = await context.new_page()
        page.set_default_timeout(10000)
        watched = Watched(page)
        host = base_url.split("//", 1)[-1].rstrip("/")
        page.on("request", lambda r: watched.outside.append(r.url) if not r.url.startswith(
            (base_url, f"ws://{host}", "data:", "blob:")) else None)
        page.on("pageerror", lambda e: watched.errors.append(str(e)))
        yield watched
    finally:
        await context.close()


async def tile_colour(page: Any, number: str, state: str) -> str:
    """Wait for the extension's tile in ``state`` and read its background in the same frame (a re-render may
    replace the tile between two separate calls)."""
    handle = await page.wait_for_function(
        """([number, state]) => {
             const tile = document.querySelector(`.tile[data-extension="${number}"][data-state="${state}"]`);
             return tile && tile.isConnected ? getComputedStyle(tile).backgroundColor : null;
           }""", arg=[number, state])
    colour: str = await handle.json_value()
    return colour
