"""Starting downloads: JM albums and booru datasets become jobs (202 at once)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from app.api.deps import ApiKey, BooruSiteDep, JmDep, JobsDep, SettingsDep
from app.api.jm import AlbumIdPath, parse_album_id
from app.api.schemas import UPSTREAM, Accepted, errors
from app.archives import FormatName
from app.errors import NotFound, Unprocessable
from app.jobs.models import Job
from app.jobs.specs import MAX_CHAPTERS, AlbumSpec, BooruSpec, spec_problem
from app.outputs.exports.options import TrainerOptions
from app.sources.album_archive import Layout, unknown_chapters_problem
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.jm import JmSource

router = APIRouter(tags=["downloads"], dependencies=[ApiKey], responses=errors(401, 422, 503))

CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"


# The one rule between keys, in the schema too: layout "chapters" only for a zip (JSON Schema if/then).
ZIP_FOR_CHAPTER_FOLDERS: dict[str, Any] = {
    "if": {"properties": {"layout": {"const": "chapters"}}, "required": ["layout"]},
    "then": {"properties": {"format": {"const": "zip"}}},
}
ChapterId = Annotated[str, StringConstraints(pattern=r"^(?:[Jj][Mm])?0*[1-9][0-9]{0,11}$")] | \
    Annotated[int, Field(ge=1, le=999_999_999_999)]


class AlbumDownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=ZIP_FOR_CHAPTER_FOLDERS)

    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    format: FormatName = Field(
        "zip", description="zip: pages plus cover.jpg; cbz: a comic book (pages flat, ComicInfo.xml); pdf: one "
        "page per image, an outline entry per chapter")
    layout: Layout = Field(
        "flat", description="flat: every page at the top level, numbered across chapters (what existing "
        "apps read); chapters: one folder per chapter (zip only)")
    chapters: list[ChapterId] | None = Field(
        None, min_length=1, max_length=MAX_CHAPTERS,
        description="chapter ids to include (chapters[].id of /v1/info); default all")


class BooruDownloadRequest(TrainerOptions):
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
    body.update(job.spec_fields())
    if job.state == "ready":
        body.update(file_name=job.file_name, download_url=job.download_url)
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}"})


@router.post("/v1/download/album/{album_id}", status_code=202, response_model=Accepted,
             responses=errors(400, 404, *UPSTREAM))  # 404 and upstream errors: checking chosen chapters
async def download_album(
    album_id: AlbumIdPath,
    jobs: JobsDep,
    jm: JmDep,
    body: Annotated[AlbumDownloadRequest | None, Body()] = None,
    client_id: Annotated[str | None, Query(pattern=CLIENT_ID_PATTERN)] = None,
) -> JSONResponse:
    """Start downloading a JM album into one archive (zip, cbz or pdf); progress goes to the client's WebSocket."""
    aid = parse_album_id(album_id)
    cid = (body.client_id if body else None) or client_id
    try:
        spec = AlbumSpec(album_id=aid, **(body.model_dump(exclude={"client_id"}) if body else {}))
    except ValidationError as exc:
        raise Unprocessable("Invalid request: " + spec_problem(exc)) from None
    if spec.chapters:
        await _check_chapters(jm, spec)
    job, created = await jobs.submit(spec, cid)
    return _accepted(job, created, cid, f"Album {aid} is queued for download.")


async def _check_chapters(jm: JmSource, spec: AlbumSpec) -> None:
    """Unknown chapter ids are a 422 now rather than a job that fails later (album info is cached)."""
    album = await jm.album(spec.album_id)
    problem = unknown_chapters_problem(spec.album_id, spec.chapters or (),
                                       [(str(c["id"]), str(c["title"])) for c in album.chapters])
    if problem:
        raise NotFound(problem)


@router.post("/v1/download/booru/{site}", status_code=202, response_model=Accepted,
             responses=errors(404, *UPSTREAM))
async def download_booru(site: BooruSiteDep, body: BooruDownloadRequest, jobs: JobsDep,
                         settings: SettingsDep) -> JSONResponse:
    """Start a dataset download (images plus same-named .txt captions, optional exports and de-duplication) by tags."""
    # Missing or malformed credentials: say so now (502) rather than in a job that fails later.
    site.check_credentials()
    max_images = body.max_images or min(200, settings.max_images_per_job)
    if max_images > settings.max_images_per_job:
        raise Unprocessable(
            f"max_images is {max_images}, above this server's limit of {settings.max_images_per_job} "
            "(JMBOORU_MAX_IMAGES_PER_JOB): ask for fewer images or split the download."
        )
    name, tags = site.info.site, body.tags
    spec = BooruSpec(site=name, tags=tags, max_images=max_images, caption=body.caption, filters=body.filters,
                     exports=body.exports, export_options=body.export_options, dedupe=body.dedupe,
                     skip_variants=body.skip_variants)
    job, created = await jobs.submit(spec, body.client_id)
    return _accepted(job, created, body.client_id, f"A {site.info.name} dataset for '{tags}' is queued.")
