"""Scan triggers: after a library job, ask Komga and/or Kavita to scan the library (library.md).

A failing server is logged (never its key or token) and never fails or delays the job.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx

from app.config import Settings

log = logging.getLogger("jmbooru.library")
TIMEOUT = httpx.Timeout(10.0)


@dataclass
class ScanTriggers:
    settings: Settings
    user_agent: str
    _kavita_token: str | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def komga(self) -> bool:
        s = self.settings
        return bool(s.komga_url and s.komga_api_key.get_secret_value() and s.komga_library_id)

    @property
    def kavita(self) -> bool:
        s = self.settings
        return bool(s.kavita_url and s.kavita_api_key.get_secret_value() and s.kavita_library_id)

    async def scan(self) -> None:
        """One scan request to each configured server; failures are logged only."""
        if not (self.komga or self.kavita):
            return
        async with httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": self.user_agent},
                                     follow_redirects=False) as client:
            await asyncio.gather(self._komga(client), self._kavita(client))

    async def _komga(self, client: httpx.AsyncClient) -> None:
        if not self.komga:
            return
        s = self.settings
        url = f"{s.komga_url.rstrip('/')}/api/v1/libraries/{s.komga_library_id}/scan"
        try:
            resp = await client.post(url, headers={"X-API-Key": s.komga_api_key.get_secret_value()})
        except httpx.HTTPError as exc:
            log.warning("komga scan request failed: %s", type(exc).__name__)
            return
        if resp.status_code >= 300:
            log.warning("komga refused the scan request (HTTP %d)", resp.status_code)

    async def _kavita_login(self, client: httpx.AsyncClient) -> str | None:
        s = self.settings
        resp = await client.post(f"{s.kavita_url.rstrip('/')}/api/Plugin/authenticate",
                                 params={"apiKey": s.kavita_api_key.get_secret_value(), "pluginName": "jmbooru"})
        if resp.status_code != 200:
            log.warning("kavita refused the API key (HTTP %d)", resp.status_code)
            return None
        try:
            token = resp.json().get("token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            log.warning("kavita's authenticate answer had no token")
            return None
        return token

    async def _kavita(self, client: httpx.AsyncClient) -> None:
        if not self.kavita:
            return
        s = self.settings
        url = f"{s.kavita_url.rstrip('/')}/api/Library/scan"
        try:
            async with self._lock:
                for attempt in (1, 2):
                    if self._kavita_token is None:
                        self._kavita_token = await self._kavita_login(client)
                        if self._kavita_token is None:
                            return
                    resp = await client.post(url, params={"libraryId": s.kavita_library_id},
                                             headers={"Authorization": f"Bearer {self._kavita_token}"})
                    if resp.status_code == 401 and attempt == 1:  # the token expired: log in again once
                        self._kavita_token = None
                        continue
                    if resp.status_code >= 300:
                        log.warning("kavita refused the scan request (HTTP %d)", resp.status_code)
                    return
        except httpx.HTTPError as exc:
            log.warning("kavita scan request failed: %s", type(exc).__name__)
