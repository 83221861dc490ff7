"""Starting downloads: JM albums and booru datasets become jobs (202 at once)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.deps import ApiKey, BooruSiteDep, JobsDep, SettingsDep
from app.api.jm import AlbumIdPath, parse_album_id
from app.api.schemas import UPSTREAM, Accepted, errors
from app.errors import Unprocessable
from app.jobs.album_runner import Layout
from app.jobs.models import Job
from app.sources.captions import CaptionOptions, PostFilters

router = APIRouter(tags=["downloads"], dependencies=[ApiKey], responses=errors(401, 422, 503))

CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"


class AlbumDownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    layout: Layout = Field(
        "flat", description="flat: every page at the top level, numbered across chapters (what existing "
        "apps read); chapters: one folder per chapter")


class BooruDownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # "max": 5 must not silently become 200 images

    tags: str = Field(min_length=1, max_length=1000, description="space-separated tags, as on the site")
    max_images: int | None = Field(None, ge=1, description="default: 200, or the server's limit if lower")
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    filters: PostFilters = Field(default_factory=PostFilters)

    @field_validator("tags")
    @classmethod
    def _some_tags(cls, value: str) -> str:
        # Blank tags would download the newest posts of the whole site.
        if not value.strip():
            raise ValueError("give at least one tag (blank tags would download the whole site)")
        return " ".join(value.split())


def _accepted(job: Job, created: bool, client_id: str | None, message: str) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "processing",
        "message": message if created else f"Already {job.state}: you joined the existing download.",
        "job_id": job.job_id,
        "status_url": f"/v1/jobs/{job.job_id}",
        "events_url": f"/ws/jobs/{job.job_id}",
        "state": str(job.state),
        "joined": not created,
        "client_id": client_id,
    }
    if job.kind == "album":
        body["album_id"] = job.params.get("album_id")
    if job.state == "ready":
        body.update(file_name=job.file_name, download_url=job.download_url)
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}"})


@router.post("/v1/download/album/{album_id}", status_code=202, response_model=Accepted,
             responses=errors(400))
async def download_album(
    album_id: AlbumIdPath,
    jobs: JobsDep,
    body: Annotated[AlbumDownloadRequest | None, Body()] = None,
    client_id: Annotated[str | None, Query(pattern=CLIENT_ID_PATTERN)] = None,
) -> JSONResponse:
    """Start downloading a JM album into one zip; progress goes to the client's WebSocket."""
    aid = parse_album_id(album_id)
    cid = (body.client_id if body else None) or client_id
    layout = body.layout if body else "flat"
    key = f"album:{aid}" if layout == "flat" else f"album:{aid}:{layout}"
    params = {"album_id": aid, "layout": layout}
    job, created = await jobs.submit("album", key, params, cid, title=f"JM{aid}")
    return _accepted(job, created, cid, f"Album {aid} is queued for download.")


@router.post("/v1/download/booru/{site}", status_code=202, response_model=Accepted,
             responses=errors(404, *UPSTREAM))
async def download_booru(site: BooruSiteDep, body: BooruDownloadRequest, jobs: JobsDep,
                         settings: SettingsDep) -> JSONResponse:
    """Start a dataset download (images plus same-named .txt captions) by tags."""
    # Missing or malformed credentials: say so now (502) rather than in a job that fails later.
    site.check_credentials()
    max_images = body.max_images or min(200, settings.max_images_per_job)
    if max_images > settings.max_images_per_job:
        raise Unprocessable(
            f"max_images is {max_images}, above this server's limit of {settings.max_images_per_job} "
            "(JMBOORU_MAX_IMAGES_PER_JOB): ask for fewer images or split the download."
        )
    name, tags = site.info.site, body.tags
    params = {
        "site": name,
        "tags": tags,
        "max_images": max_images,
        "caption": body.caption.model_dump(),
        "filters": body.filters.model_dump(),
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    job, created = await jobs.submit("booru", f"booru:{name}:{digest}", params, body.client_id,
                                     title=f"{name}: {tags}")
    return _accepted(job, created, body.client_id, f"A {site.info.name} dataset for '{tags}' is queued.")
