"""Caller-name look-up in a CRM over HTTP, bounded by a short timeout and cached in memory.

A ringing call must never wait on a slow or dead CRM: every look-up is cut off at
``agi.crm_timeout`` seconds and then the call goes on with the name Asterisk already had.
Answers (a name, or "not found") are cached for ``agi.crm_cache_seconds``; failures are not,
so a CRM that comes back is used at once.

The URL template gets ``{number}`` (E.164 when known, URL-quoted) and ``{raw}`` (as received). The CRM
answers JSON (``{"name": "…"}``, also ``caller_name``/``display_name``) or plain text (first line);
404 or an empty body means "not known".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import quote

import aiohttp

log = logging.getLogger("agi_scripts.crm")

MAX_NAME = 80
_NAME_KEYS = ("name", "caller_name", "display_name", "callerName", "displayName")


def name_from_body(body: bytes, content_type: str) -> str:
    """The caller name in a CRM answer, cleaned for a CALLERID(name) (one line, ≤ 80 characters)."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    name = ""
    if "json" in content_type or text[:1] in "{[":
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, list) and data:
            data = data[0]
        if isinstance(data, dict):
            for key in _NAME_KEYS:
                if isinstance(data.get(key), str):
                    name = data[key]
                    break
        elif isinstance(data, str):
            name = data
    else:
        name = text.splitlines()[0]
    cleaned = "".join(ch if ch.isprintable() else " " for ch in name).strip()
    return cleaned[:MAX_NAME]


class CrmLookup:
    """``await lookup(number, raw)`` → name or ``""``; never raises, never exceeds the timeout."""

    def __init__(self, url_template: str, *, timeout: float = 0.5, cache_seconds: float = 300,
                 max_entries: int = 10_000) -> None:
        self.url_template = url_template
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, str]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.hits = 0
        self.misses = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return bool(self.url_template)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _cached(self, key: str) -> str | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, name = entry
        if expires < time.monotonic():
            del self._cache[key]
            return None
        return name

    def _remember(self, key: str, name: str) -> None:
        if self.cache_seconds <= 0:
            return
        if len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)))  # oldest insertion first
        self._cache[key] = (time.monotonic() + self.cache_seconds, name)

    async def lookup(self, number: str, raw: str = "") -> str:
        if not self.enabled or not number:
            return ""
        cached = self._cached(number)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        try:
            async with asyncio.timeout(self.timeout):
                name = await self._fetch(number, raw or number)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            self.failures += 1
            log.warning("event=crm_lookup_failed number=%s error=%s", number, type(exc).__name__)
            return ""
        self._remember(number, name)
        return name

    async def _fetch(self, number: str, raw: str) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = self.url_template.format(number=quote(number, safe=""), raw=quote(raw, safe=""))
        async with self._session.get(url, allow_redirects=False) as response:
            if response.status == 404:
                return ""
            if response.status >= 400:
                raise ValueError(f"CRM answered HTTP {response.status}")
            body = await response.content.read(64 * 1024)
            return name_from_body(body, response.headers.get("Content-Type", ""))
