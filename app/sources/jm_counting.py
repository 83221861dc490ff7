"""Every HTTP call jmbooru makes to JM, counted (``jmbooru_upstream_requests_total``), and every
attempt after the first (``jmbooru_upstream_retries_total``).

jmcomic makes its calls through a "postman" (curl_cffi underneath) and retries in its client's
``request_with_retry``, across domains and tries; some calls (cookies, the domain list) go to the
postman directly. So the client jmbooru builds (``impl`` ``"jmbooru-api"``, registered here) wraps
its postman, which sees every call, and counts the retries where jmcomic decides them. Page images
fetched by ``app.sources.jm_pages`` count themselves (they bypass jmcomic's retry loop).
"""

from __future__ import annotations

from typing import Any

from jmcomic import JmApiClient, JmModuleConfig

from app import upstream_counts

CLIENT_KEY = "jmbooru-api"
API, IMAGES = "jm", "jm-images"


def site_of(url: str) -> str:
    # Page images and covers are under /media/ on JM's image hosts; everything else is the API.
    return IMAGES if "/media/" in str(url) else API


def outcome_of(resp: Any) -> str:
    status = getattr(resp, "status_code", None)
    if not isinstance(status, int) or status == 0:
        return "no-answer"
    return "ok" if status < 400 else str(status)


def counted(site: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, counted under ``site`` with its status or error class."""
    try:
        resp = call(*args, **kwargs)
    except Exception as exc:
        upstream_counts.answered(site, type(exc).__name__)
        raise
    upstream_counts.answered(site, outcome_of(resp))
    return resp


class CountingPostman:
    """jmcomic's postman, with each GET and POST counted; everything else is passed through."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return counted(site_of(url), self._inner.get, url, *args, **kwargs)

    def post(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return counted(site_of(url), self._inner.post, url, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CountingApiClient(JmApiClient):  # type: ignore[misc]
    client_key = CLIENT_KEY

    def __init__(self, postman: Any, *args: Any, **kwargs: Any) -> None:
        # Wrapped before jmcomic's own __init__, which already calls JM (cookies, domains).
        super().__init__(CountingPostman(postman), *args, **kwargs)

    def request_with_retry(self, request: Any, url: str, domain_index: int = 0, retry_count: int = 0,
                           is_image: bool = False, _retry_errors: Any = None, **kwargs: Any) -> Any:
        if (domain_index or retry_count) and domain_index < len(self.domain_list):
            upstream_counts.retried(IMAGES if is_image else API)
        return super().request_with_retry(request, url, domain_index, retry_count, is_image, _retry_errors,
                                          **kwargs)


JmModuleConfig.register_client(CountingApiClient)
