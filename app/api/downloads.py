"""Starting downloads: JM albums and booru datasets become jobs (202 at once)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from app.api.deps import ApiKey, BooruSiteDep, JmDep, JobsDep, SettingsDep
from app.api.jm import AlbumIdPath, parse_album_id
from app.api.schemas import UPSTREAM, Accepted, errors
from app.archives.names import FormatName
from app.config import Settings
from app.errors import NotFound, Unprocessable
from app.jobs.kinds.album import AlbumSpec
from app.jobs.kinds.booru import BooruSpec
from app.jobs.kinds.pool import PoolSpec
from app.jobs.models import CLIENT_ID_PATTERN, Job
from app.jobs.service import JobService
from app.jobs.specs import MAX_CHAPTERS, Dest, PoolFormat, spec_problem
from app.json_types import PositiveJsonInt, json_number
from app.outputs.exports.options import TrainerOptions
from app.sources.album_archive import Layout, unknown_chapters_problem
from app.sources.booru.base import BooruSite
from app.sources.booru.pools import pool_site
from app.sources.booru.values import visible_words
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.jm import JmSource

router = APIRouter(tags=["downloads"], dependencies=[ApiKey], responses=errors(401, 422, 503))

# A client id is a bearer name (README, security notes): the documents say to make it random.
CLIENT_ID_DOC = ("your app's id for /ws/notifications/{client_id}: make it once with a random UUID and keep it "
                 "(whoever knows it can read its finals)")
CLIENT_ID_EXAMPLES = ["3f2b8c1e-9d4a-4e7b-a5c6-0f1e2d3c4b5a"]


# The one rule between keys, in the schema too: layout "chapters" only for a zip (JSON Schema if/then).
ZIP_FOR_CHAPTER_FOLDERS: dict[str, Any] = {
    "if": {"properties": {"layout": {"const": "chapters"}}, "required": ["layout"]},
    "then": {"properties": {"format": {"const": "zip"}}},
}
# And for the library: CBZ books, flat (library.md). Both rules, in the schema too.
ALBUM_KEY_RULES: dict[str, Any] = {"allOf": [
    ZIP_FOR_CHAPTER_FOLDERS,
    {"if": {"properties": {"dest": {"const": "library"}}, "required": ["dest"]},
     "then": {"properties": {"format": {"const": "cbz"}, "layout": {"const": "flat"}}}},
]}
ChapterId = Annotated[str, StringConstraints(pattern=r"^(?:[Jj][Mm])?0*[1-9][0-9]{0,11}$")] | \
    Annotated[int, Field(ge=1, le=999_999_999_999), BeforeValidator(json_number)]  # true is no chapter id


class AlbumDownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=ALBUM_KEY_RULES)

    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN, description=CLIENT_ID_DOC,
                                  examples=CLIENT_ID_EXAMPLES)
    format: FormatName = Field(
        "zip", description="zip: pages plus cover.jpg; cbz: a comic book (pages flat, ComicInfo.xml); pdf: one "
        "page per image, an outline entry per chapter")
    layout: Layout = Field(
        "flat", description="flat: every page at the top level, numbered across chapters (what existing "
        "apps read); chapters: one folder per chapter (zip only)")
    chapters: list[ChapterId] | None = Field(
        None, min_length=1, max_length=MAX_CHAPTERS,
        description="chapter ids to include (chapters[].id of /v1/info); default all")
    dest: Dest = Field("archive", description="archive: a 30-minute download; library: one CBZ per chapter "
                       "filed into JMBOORU_LIBRARY_DIR for Komga and Kavita")


class BooruDownloadRequest(TrainerOptions):
    model_config = ConfigDict(extra="forbid")  # "max": 5 must not silently become 200 images

    tags: str = Field(min_length=1, max_length=1000, description="space-separated tags, as on the site")
    max_images: PositiveJsonInt | None = Field(None, description="default: 200, or the server's limit if lower")
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN, description=CLIENT_ID_DOC,
                                  examples=CLIENT_ID_EXAMPLES)
    caption: CaptionOptions = Field(default_factory=CaptionOptions)
    filters: PostFilters = Field(default_factory=PostFilters)

    @field_validator("tags")
    @classmethod
    def _some_tags(cls, value: str) -> str:
        # Blank tags would download the newest posts of the whole site; a zero-width space is blank too.
        words = visible_words(value)
        if not words:
            raise ValueError("give at least one tag (blank tags would download the whole site)")
        return " ".join(words)


class PoolDownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: PoolFormat = Field("cbz", description="cbz (a comic book), zip, pdf, or dataset (images + captions)")
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    caption: CaptionOptions | None = Field(None, description="dataset only, as for booru datasets")
    dest: Dest = Field("archive", description="library: file the CBZ into JMBOORU_LIBRARY_DIR")


def library_on(settings: Settings, dest: str) -> None:
    if dest == "library" and settings.library_dir is None:
        raise Unprocessable("dest 'library' needs a reader library: set JMBOORU_LIBRARY_DIR (the folder Komga or "
                            "Kavita reads) and restart jmbooru.")


def accepted_body(job: Job, created: bool, client_id: str | None, message: str) -> Accepted:
    """The 202 answer's body: the seed's keys, the job's state and what its kind adds."""
    added: dict[str, Any] = job.spec_fields()
    if job.state == "ready":
        added.update(file_name=job.file_name, download_url=job.download_url)
    return Accepted(status="processing",
                    message=message if created else f"Already {job.state}: you joined the existing download.",
                    job_id=job.job_id, status_url=f"/v1/jobs/{job.job_id}", events_url=f"/ws/jobs/{job.job_id}",
                    state=str(job.state), joined=not created, client_id=client_id, **added)


AnswerT = TypeVar("AnswerT", bound=Accepted)


def accepted(answer: AnswerT, response: Response) -> AnswerT:
    """A 202 answer (the route's status code) that points at the job: ``Location`` is its status URL."""
    response.headers["Location"] = answer.status_url
    return answer


@router.post("/v1/download/album/{album_id}", status_code=202, response_model=Accepted,
             responses=errors(400, 404, *UPSTREAM))  # 404 and upstream errors: the album is looked up first
async def download_album(
    album_id: AlbumIdPath,
    jobs: JobsDep,
    jm: JmDep,
    response: Response,
    body: Annotated[AlbumDownloadRequest | None, Body()] = None,
    client_id: Annotated[str | None, Query(pattern=CLIENT_ID_PATTERN, description=CLIENT_ID_DOC,
                                           examples=CLIENT_ID_EXAMPLES)] = None,
) -> Accepted:
    """Start downloading a JM album into one archive (zip, cbz or pdf); progress goes to the client's WebSocket."""
    return accepted(await start_album(jm, jobs, parse_album_id(album_id), body, client_id), response)


async def start_album(jm: JmSource, jobs: JobService, aid: str, body: AlbumDownloadRequest | None,
                      client_id: str | None = None) -> Accepted:
    """Look the album up, then start (or join) its job; the 202 body."""
    cid = (body.client_id if body else None) or client_id
    if body is not None:
        library_on(jobs.settings, body.dest)
    try:
        spec = AlbumSpec(album_id=aid, **(body.model_dump(exclude={"client_id"}, exclude_unset=True) if body else {}))
    except ValidationError as exc:
        raise Unprocessable("Invalid request: " + spec_problem(exc)) from None
    await check_album(jm, spec)
    job, created = await jobs.submit(spec, cid)
    return accepted_body(job, created, cid, f"Album {aid} is queued for download.")


async def check_album(jm: JmSource, spec: AlbumSpec) -> None:
    """An unknown album (404, /v1/info's sentence) or chapter is refused now rather than made a job
    that fails later; upstream failures answer 502/503/504. The lookup is /v1/info's cached one."""
    album = await jm.album(spec.album_id)
    if not spec.chapters:
        return
    problem = unknown_chapters_problem(spec.album_id, spec.chapters or (),
                                       [(str(c["id"]), str(c["title"])) for c in album.chapters])
    if problem:
        raise NotFound(problem)


@router.post("/v1/download/booru/{site}", status_code=202, response_model=Accepted,
             responses=errors(404, *UPSTREAM))
async def download_booru(site: BooruSiteDep, body: BooruDownloadRequest, jobs: JobsDep,
                         settings: SettingsDep, response: Response) -> Accepted:
    """Start a dataset download (images plus same-named .txt captions, optional exports and de-duplication) by tags."""
    return accepted(await start_booru(site, body, jobs, settings), response)


async def start_booru(site: BooruSite, body: BooruDownloadRequest, jobs: JobService,
                      settings: Settings) -> Accepted:
    """Check credentials and limits, then start (or join) the dataset job; the 202 body."""
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
    return accepted_body(job, created, body.client_id, f"A {site.info.name} dataset for '{tags}' is queued.")


@router.post("/v1/download/booru/{site}/pool/{pool_id}", status_code=202, response_model=Accepted,
             responses=errors(404, *UPSTREAM))
async def download_pool(site: BooruSiteDep, jobs: JobsDep, response: Response,
                        pool_id: Annotated[int, Path(ge=1, le=2**31, description="the pool's number on the site")],
                        body: Annotated[PoolDownloadRequest | None, Body()] = None) -> Accepted:
    """Download a booru pool as one book (its posts in pool order): CBZ, zip, PDF, a dataset, or into the library."""
    return accepted(await start_pool(site, pool_id, body or PoolDownloadRequest(), jobs), response)


async def start_pool(site: BooruSite, pool_id: int, body: PoolDownloadRequest, jobs: JobService) -> Accepted:
    """Check the site has pools and the pool exists (404 now, not a job that fails later); the 202 body."""
    pools = pool_site(site)
    if body.caption is not None and body.format != "dataset":
        raise Unprocessable("caption applies to format 'dataset' only (a book's pages have no captions).")
    library_on(jobs.settings, body.dest)
    try:
        spec = PoolSpec(site=site.info.site, pool_id=pool_id, format=body.format, dest=body.dest,
                        caption=body.caption or CaptionOptions())
    except ValidationError as exc:
        raise Unprocessable("Invalid request: " + spec_problem(exc)) from None
    site.check_credentials()
    pool = await pools.pool(pool_id)
    job, created = await jobs.submit(spec, body.client_id)
    return accepted_body(job, created, body.client_id, f"Pool {pool_id} ({pool.name}) is queued for download.")
