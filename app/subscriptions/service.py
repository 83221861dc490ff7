"""The subscription verbs: create (with its first check), list, get, change, delete, check.

A check asks its kind's source what is new (``checks``), submits ordinary jobs for it through the
job service, and records the outcome on the subscription: the new ``seen`` state and the schedule
after a success, the sentence and the back-off after a failure. Creation stores nothing unless its
first check succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.config import Settings
from app.errors import AppError, NotFound, Unprocessable
from app.jobs.models import Job
from app.jobs.specs import JobSpec
from app.subscriptions import notify
from app.subscriptions.checks import (
    CheckPlan,
    CheckSources,
    check_booru_query,
    check_jm_album,
    check_jm_favorites,
)
from app.subscriptions.models import (
    ASCII_ID,
    BOORU_ONLY,
    DEFAULT_INTERVAL_MINUTES,
    FIXED,
    JM_ONLY,
    KINDS,
    PATCHABLE,
    Subscription,
    SubscriptionCreate,
    SubscriptionPatch,
    first_problem,
)
from app.subscriptions.store import SubscriptionStore

log = logging.getLogger("jmbooru.subscriptions")

Submit = Callable[[JobSpec, str | None], Awaitable[tuple[Job, bool]]]
TARGET_KEYS = {"jm_album": {"album_id"}, "jm_favorites": {"folder"}, "booru_query": {"site", "tags"}}


@dataclass
class CheckAnswer:
    subscription: Subscription
    new: list[dict[str, Any]]
    jobs: list[dict[str, Any]]


def _blank(text: str) -> bool:
    return not "".join(ch for ch in text if ch.isprintable() and not ch.isspace()
                       and ch not in "\u200b\u2060\ufeff")


class SubscriptionService:
    def __init__(self, settings: Settings, store: SubscriptionStore, sources: CheckSources, submit: Submit,
                 notify_send: Callable[[list[str], str, str], Awaitable[None]]) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self.submit = submit
        self.notify_send = notify_send
        self._running: dict[str, asyncio.Task[Any]] = {}

    # --- validation -----------------------------------------------------------------------

    def _interval(self, value: float | None) -> float:
        minutes = DEFAULT_INTERVAL_MINUTES if value is None else float(value)
        minimum = self.settings.subscription_min_interval_seconds / 60
        if not minutes >= minimum or minutes != minutes or minutes == float("inf"):
            raise Unprocessable(f"interval_minutes must be a number of at least {minimum:g} "
                                "(JMBOORU_SUBSCRIPTION_MIN_INTERVAL_SECONDS on this server).")
        return minutes

    def _target(self, kind: str, target: dict[str, Any] | None) -> dict[str, Any]:
        if target is None:
            if kind == "jm_favorites":
                return {}
            raise Unprocessable(f"A {kind} subscription needs a target: " + (
                '{"album_id": "<digits>"}.' if kind == "jm_album" else '{"site": "<site>", "tags": "<tags>"}.'))
        unknown = sorted(set(target) - TARGET_KEYS[kind])
        if unknown:
            allowed = ", ".join(sorted(TARGET_KEYS[kind]))
            raise Unprocessable(f"target.{unknown[0]} does not apply to {kind}; its target takes {allowed}.")
        if kind == "jm_album":
            raw = target.get("album_id")
            text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
            text = text.strip().upper().removeprefix("JM")
            if not ASCII_ID.fullmatch(text):
                raise Unprocessable("target.album_id must be a JM album id: a positive number, like \"710\".")
            return {"album_id": text}
        if kind == "jm_favorites":
            folder = target.get("folder", "0")
            text = str(folder) if isinstance(folder, (str, int)) and not isinstance(folder, bool) else ""
            if not text.isascii() or not text.isdigit():
                raise Unprocessable("target.folder must be a favourites folder id (digits; \"0\" is every favourite).")
            return {"folder": str(int(text))} if "folder" in target else {}
        site, tags = target.get("site"), target.get("tags")
        if not isinstance(site, str) or site not in self.sources.booru:
            raise Unprocessable(f"target.site must be one of the booru sites: {', '.join(self.sources.booru)}.")
        if not isinstance(tags, str) or _blank(tags):
            raise Unprocessable("target.tags must name at least one tag, like \"kagamine_rin\".")
        if len(tags) > 500:
            raise Unprocessable("target.tags is too long (500 characters at most).")
        return {"site": site, "tags": " ".join(tags.split())}

    def _max_images(self, value: int | None) -> int:
        limit = self.settings.max_images_per_job
        if value is None:
            return limit
        if value > limit:
            raise Unprocessable(f"max_images may be at most {limit} on this server (JMBOORU_MAX_IMAGES_PER_JOB).")
        return value

    @staticmethod
    def _notify(urls: list[str]) -> list[str]:
        problem = notify.notify_problem(urls)
        if problem:
            raise Unprocessable(problem[0].upper() + problem[1:] + ".")
        return urls

    def parse_create(self, body: Any) -> Subscription:
        if not isinstance(body, dict):
            raise Unprocessable("Send a JSON object with at least kind and target.")
        kind = body.get("kind")
        if kind not in KINDS:
            raise Unprocessable(f"kind must be one of {', '.join(KINDS)}.")
        not_for_kind = BOORU_ONLY if kind != "booru_query" else JM_ONLY
        for key in not_for_kind:
            if key in body:
                raise Unprocessable(f"'{key}' does not apply to {kind} subscriptions.")
        try:
            req = SubscriptionCreate.model_validate(body)
        except ValidationError as exc:
            raise Unprocessable(first_problem(exc)) from None
        if req.seed not in ("latest", "all"):
            raise Unprocessable("seed must be \"latest\" (mark what exists as seen) or \"all\" (download it).")
        if req.dest == "library" and not getattr(self.settings, "library_dir", None):
            raise Unprocessable("dest \"library\" needs a reader library: set JMBOORU_LIBRARY_DIR and restart jmbooru.")
        target = self._target(kind, req.target)
        sub = Subscription(
            id=secrets.token_urlsafe(9), kind=kind, target=target, name=req.name or "",
            interval_minutes=self._interval(req.interval_minutes), enabled=req.enabled, seed=req.seed,  # type: ignore[arg-type]
            client_id=req.client_id, notify=self._notify(req.notify))
        if kind == "booru_query":
            sub.caption = (req.caption.model_dump() if req.caption else {})
            sub.filters = (req.filters.model_dump(exclude_defaults=True) if req.filters else {})
            sub.max_images = self._max_images(req.max_images)
            sub.name = sub.name or f"{target['site']}: {target['tags']}"
        else:
            sub.format, sub.layout, sub.dest = req.format or "zip", req.layout or "flat", req.dest or "archive"
            if sub.dest == "library":
                if (req.format or "cbz") != "cbz" or (req.layout or "flat") != "flat":
                    raise Unprocessable("dest \"library\" files CBZ books: leave format and layout out.")
                sub.format = "cbz"
            from app.jobs.kinds.album import (
                AlbumSpec,  # the options, checked as an album job would check them
            )
            try:
                AlbumSpec(album_id="1", format=sub.format, layout=sub.layout)
            except ValidationError as exc:
                raise Unprocessable(first_problem(exc)) from None
            if kind == "jm_favorites":
                sub.name = sub.name or "JM favourites"
        return sub

    # --- the verbs --------------------------------------------------------------------------

    async def create(self, body: Any) -> Subscription:
        sub = self.parse_create(body)
        answer = await self._check(sub, record_failure=False)  # nothing is stored when it fails
        return answer.subscription

    async def all(self) -> list[Subscription]:
        return await self.store.all()

    async def get(self, sub_id: str) -> Subscription:
        sub = await self.store.get(sub_id)
        if sub is None:
            raise NotFound("There is no subscription with that id.")
        return sub

    async def patch(self, sub_id: str, body: Any) -> Subscription:
        if not isinstance(body, dict):
            raise Unprocessable("Send a JSON object with the keys to change.")
        for key in body:
            if key in FIXED:
                raise Unprocessable(f"'{key}' cannot change: delete the subscription and create a new one.")
            if key not in PATCHABLE:
                raise Unprocessable(f"'{key}' is not a key a subscription has; it takes {', '.join(PATCHABLE)}.")
        sub = await self.get(sub_id)
        not_for_kind = BOORU_ONLY if sub.kind != "booru_query" else ("format", "layout")
        for key in body:
            if key in not_for_kind:
                raise Unprocessable(f"'{key}' does not apply to {sub.kind} subscriptions.")
        try:
            req = SubscriptionPatch.model_validate(body)
        except ValidationError as exc:
            raise Unprocessable(first_problem(exc)) from None
        if "name" in body:
            sub.name = req.name or sub.name
        if "client_id" in body:
            sub.client_id = req.client_id
        if "format" in body or "layout" in body:
            from app.jobs.kinds.album import AlbumSpec
            fmt, layout = req.format or sub.format or "zip", req.layout or sub.layout or "flat"
            try:
                AlbumSpec(album_id="1", format=fmt, layout=layout)
            except ValidationError as exc:
                raise Unprocessable(first_problem(exc)) from None
            sub.format, sub.layout = fmt, layout
        if "caption" in body:
            sub.caption = req.caption.model_dump() if req.caption else {}
        if "filters" in body:
            sub.filters = req.filters.model_dump(exclude_defaults=True) if req.filters else {}
        if "max_images" in body:
            sub.max_images = self._max_images(req.max_images)
        if "notify" in body:
            sub.notify = self._notify(req.notify or [])
        reschedule = False
        if "interval_minutes" in body:
            sub.interval_minutes = self._interval(req.interval_minutes)
            reschedule = True
        if "enabled" in body and req.enabled is not None:
            sub.enabled = req.enabled
            reschedule = True
        if reschedule:
            sub.schedule_next()
        await self.store.put(sub)
        return sub

    async def delete(self, sub_id: str) -> None:
        if not await self.store.delete(sub_id):
            raise NotFound("There is no subscription with that id.")

    async def check(self, sub_id: str) -> CheckAnswer:
        """A check now (also when disabled); a failure is recorded, then raised."""
        sub = await self.get(sub_id)
        return await self._check(sub, record_failure=True)

    # --- checking ---------------------------------------------------------------------------

    async def _plan(self, sub: Subscription) -> CheckPlan:
        if sub.kind == "jm_album":
            return await check_jm_album(sub, self.sources)
        if sub.kind == "jm_favorites":
            return await check_jm_favorites(sub, self.sources)
        return await check_booru_query(sub, self.sources, sub.max_images or self.settings.max_images_per_job)

    async def _check(self, sub: Subscription, *, record_failure: bool) -> CheckAnswer:
        started = time.time()
        try:
            plan = await self._plan(sub)
            if sub.kind == "jm_album" and not sub.name:
                sub.name = (await self.sources.jm.album(sub.target["album_id"])).title
            jobs = []
            for planned in plan.jobs:
                job, _created = await self.submit(planned.spec, sub.client_id)
                jobs.append({"job_id": job.job_id, "status_url": f"/v1/jobs/{job.job_id}", "kind": job.kind,
                             **planned.info})
        except AppError as exc:
            if record_failure:
                await self._record_failure(sub, started, exc)
            raise
        sub.seen = plan.seen
        sub.last_checked_at = started
        sub.last_error = None
        sub.consecutive_failures = 0
        sub.last_new = len(plan.new)
        sub.last_jobs = [j["job_id"] for j in jobs]
        sub.schedule_next()
        await self.store.put(sub)
        log.info("subscription checked id=%s kind=%s new=%d jobs=%d", sub.id, sub.kind, len(plan.new), len(jobs))
        if jobs and sub.notify:
            await self.notify_send(sub.notify, f"jmbooru: {sub.name}", _summary(sub, plan))
        return CheckAnswer(sub, plan.new, jobs)

    async def _record_failure(self, sub: Subscription, started: float, exc: AppError) -> None:
        current = await self.store.get(sub.id)
        if current is None:  # deleted meanwhile
            return
        current.last_checked_at = started
        current.last_error = exc.detail
        current.consecutive_failures += 1
        current.schedule_next()
        await self.store.put(current)
        log.warning("subscription check failed id=%s kind=%s failures=%d: %s", sub.id, sub.kind,
                    current.consecutive_failures, exc.detail)

    # --- the schedule -----------------------------------------------------------------------

    async def run_due(self, now: float | None = None) -> int:
        """Start the due checks (each claimed once across processes); returns how many started."""
        now = time.time() if now is None else now
        started = 0
        due = await self.store.due(now)
        for sub_id in due:
            if sub_id in self._running:
                continue
            sub = await self.store.get(sub_id)
            if sub is None or not sub.enabled or sub.next_check_at is None or sub.next_check_at > now:
                continue
            claim_for = max(60.0, 10 * self.settings.subscription_tick_seconds)
            if not await self.store.claim(sub.id, sub.next_check_at, claim_for):
                continue
            task = asyncio.create_task(self._scheduled(sub), name=f"subscription-{sub.id}")
            self._running[sub.id] = task
            task.add_done_callback(self._forget)
            started += 1
        return started

    def _forget(self, task: asyncio.Task[Any]) -> None:
        for key, running in list(self._running.items()):
            if running is task:
                del self._running[key]

    async def _scheduled(self, sub: Subscription) -> None:
        try:
            await self._check(sub, record_failure=True)
        except AppError:
            pass  # recorded on the subscription and logged
        except Exception:  # a check never stops the scheduler
            log.exception("subscription check crashed id=%s", sub.id)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _summary(sub: Subscription, plan: CheckPlan) -> str:
    count = len(plan.new)
    if sub.kind == "booru_query":
        noun = "post" if count == 1 else "posts"
        return f"{count} new {noun} for {sub.target['site']}: {sub.target['tags']}."
    noun = "chapter" if count == 1 else "chapters"
    titles = ", ".join(str(item.get("title") or item.get("chapter_id")) for item in plan.new[:10])
    more = f" and {count - 10} more" if count > 10 else ""
    return f"{count} new {noun}: {titles}{more}."
