"""Scraping trial sidecars: bounded concurrency and a timeout per request.

One slow or dead sidecar costs at most `timeout` seconds of one slot: it never
stalls another trial or another tuning job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class SeriesChunk:
    """What a sidecar returned: objective points from index `since` on."""

    points: list[tuple[float, float]]
    count: int
    ended: bool


class Scraper:
    def __init__(self, concurrency: int, timeout_seconds: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self.errors = 0

    async def fetch(self, ip: str, port: int, since: int) -> SeriesChunk | str:
        """The new points, or the error as text (the caller decides what a failure means)."""
        url = f"http://{ip}:{port}/series?since={since}"
        async with self._slots:
            try:
                session = self._open()
                async with session.get(url) as response:
                    if response.status != 200:
                        self.errors += 1
                        return f"HTTP {response.status} from {url}"
                    body: dict[str, Any] = await response.json()
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                self.errors += 1
                return f"{type(exc).__name__} from {url}: {exc}".rstrip(": ")
        points = [(float(p[0]), float(p[1])) for p in body.get("points", [])]
        return SeriesChunk(points, int(body.get("count", 0)), bool(body.get("ended")))

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
