"""Subscriptions: follow a JM album, the JM favourites or a booru search (subscriptions.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, Field

from app.api.deps import ApiKey
from app.api.schemas import UPSTREAM, errors
from app.subscriptions.service import SubscriptionService

router = APIRouter(tags=["subscriptions"], dependencies=[ApiKey], responses=errors(401, 503))

SubId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the id a subscription was created with")]
CREATE_EXAMPLE = {"kind": "jm_album", "target": {"album_id": "710"}, "client_id": "my-phone", "format": "cbz"}


class SubscriptionOut(BaseModel):
    """A subscription and its state (times in ISO 8601, UTC)."""

    id: str
    kind: str = Field(description="jm_album, jm_favorites or booru_query")
    target: dict[str, Any]
    name: str
    interval_minutes: float
    enabled: bool
    seed: str
    client_id: str | None
    format: str | None
    layout: str | None
    dest: str | None
    notify: list[str]
    created_at: str
    last_checked_at: str | None
    next_check_at: str | None
    last_error: str | None
    consecutive_failures: int
    last_new: int
    last_jobs: list[str]
    seen: dict[str, Any]
    caption: dict[str, Any] | None = Field(None, description="booru_query only")
    filters: dict[str, Any] | None = Field(None, description="booru_query only")
    max_images: int | None = Field(None, description="booru_query only")


class CheckOut(BaseModel):
    subscription: SubscriptionOut
    new: list[dict[str, Any]] = Field(description="what the started jobs download: chapters, or posts")
    jobs: list[dict[str, Any]] = Field(description="the jobs the check started")


def _service(request: Request) -> SubscriptionService:
    service: SubscriptionService = request.app.state.subscriptions
    return service


@router.post("/v1/subscriptions", status_code=201, response_model=SubscriptionOut,
             responses=errors(404, 409, 422, *UPSTREAM))
async def create_subscription(
    request: Request,
    body: Annotated[dict[str, Any], Body(description="kind, target and options (see subscriptions.md)",
                                         examples=[CREATE_EXAMPLE])],
) -> dict[str, Any]:
    """Subscribe, after a first check (which marks what exists as seen, or downloads it with seed "all")."""
    return (await _service(request).create(body)).public()


@router.get("/v1/subscriptions", response_model=list[SubscriptionOut])
async def list_subscriptions(request: Request) -> list[dict[str, Any]]:
    """Every subscription, oldest first."""
    return [s.public() for s in await _service(request).all()]


@router.get("/v1/subscriptions/{sub_id}", response_model=SubscriptionOut, responses=errors(404))
async def get_subscription(sub_id: SubId, request: Request) -> dict[str, Any]:
    """One subscription and its state."""
    return (await _service(request).get(sub_id)).public()


@router.patch("/v1/subscriptions/{sub_id}", response_model=SubscriptionOut, responses=errors(404, 422))
async def patch_subscription(
    sub_id: SubId, request: Request,
    body: Annotated[dict[str, Any], Body(description="any of name, interval_minutes, enabled, client_id, "
                                         "format, layout, caption, filters, max_images, notify")],
) -> dict[str, Any]:
    """Change a subscription's name, schedule or options."""
    return (await _service(request).patch(sub_id, body)).public()


@router.delete("/v1/subscriptions/{sub_id}", status_code=204, response_class=Response, responses=errors(404))
async def delete_subscription(sub_id: SubId, request: Request) -> Response:
    """Remove a subscription (the jobs it started are not touched)."""
    await _service(request).delete(sub_id)
    return Response(status_code=204)


@router.post("/v1/subscriptions/{sub_id}/check", response_model=CheckOut, responses=errors(404, 409, *UPSTREAM))
async def check_subscription(sub_id: SubId, request: Request) -> dict[str, Any]:
    """Check now (also when disabled): what is new, and the jobs started for it."""
    answer = await _service(request).check(sub_id)
    return {"subscription": answer.subscription.public(), "new": answer.new, "jobs": answer.jobs}
