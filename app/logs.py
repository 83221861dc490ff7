"""Logging set-up shared by the server, the worker and the CLI: no secret reaches a log line.

Secrets travel in places that get logged: ``?api_key=`` on WebSocket and download URLs (uvicorn's
access and WebSocket lines), booru credentials in API query strings (httpx's request log), a
password in a Redis URL. Rather than trusting every logger's configuration, every record made in
the process is redacted when it is created (a log record factory), whichever logger or handler
it goes to, before any formatter sees it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
_SECRET_PARAMS = re.compile(
    # ' and " too: uvicorn's trace lines show a query string as b'api_key=...'
    r"(?i)((?:[?&;'\"]|%3F|%26)(?:api_key|apikey|api-key|key|token|access_token|password|passwd|secret|pass_hash)"
    r"(?:=|%3D))[^&\s\"'<>;]*"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]+@")
_AUTH_HEADER = re.compile(r"(?i)\b(authorization|x-api-key)(['\"]?\s*[:=]\s*['\"]?)(?:basic |bearer )?[^\s'\",}]+")

_secrets: list[str] = []
_secret_forms: re.Pattern[str] | None = None
_installed = False
SECRET_PART_LENGTH = 12  # a `-`-separated part of a secret this long is a secret on its own


def _char_forms(char: str) -> str:
    """A regex for one character of a secret: itself or its %-encoding (either hex case; ``+`` for a space)."""
    hex_pairs = (f"{byte:02x}" for byte in char.encode())  # UTF-8, as a URL encodes it
    encoded = "".join(f"%[{pair[0].upper()}{pair[0]}][{pair[1].upper()}{pair[1]}]" for pair in hex_pairs)
    forms = [re.escape(char), encoded] + ([r"\+"] if char == " " else [])
    return "(?:" + "|".join(forms) + ")"


def _secret_pattern(secrets: list[str]) -> re.Pattern[str] | None:
    """Every known secret, and each long `-`-separated part of one, plain or %-encoded (any mix):
    a client may encode a key in a query string, and uvicorn's trace lines show it as sent."""
    pieces = set(secrets)
    for secret in secrets:
        pieces.update(part for part in secret.split("-") if len(part) >= SECRET_PART_LENGTH)
    if not pieces:
        return None
    alternatives = ["".join(_char_forms(c) for c in piece) for piece in sorted(pieces, key=len, reverse=True)]
    return re.compile("|".join(alternatives))


def redact(text: str) -> str:
    """``text`` with secret query values, URL passwords, auth headers and known secret values masked."""
    text = _SECRET_PARAMS.sub(rf"\1{REDACTED}", text)
    text = _URL_USERINFO.sub(rf"\1{REDACTED}:{REDACTED}@", text)
    text = _AUTH_HEADER.sub(rf"\1\2{REDACTED}", text)
    if _secret_forms is not None:
        text = _secret_forms.sub(REDACTED, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    if cleaned != text:
        return cleaned
    return value


def install_redaction(secrets: Iterable[str] = ()) -> None:
    """Redact every log record made from now on; ``secrets`` are values masked wherever they appear."""
    global _installed, _secret_forms
    for secret in secrets:
        if secret and len(secret) >= 4 and secret not in _secrets:
            _secrets.append(secret)
    _secret_forms = _secret_pattern(_secrets)
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            # Keep the tuple's shape: uvicorn's access formatter unpacks it.
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):  # one mapping argument: format it now, then redact
            mapping = record.args
            try:
                record.msg, record.args = redact(record.getMessage()), None
            except (TypeError, ValueError, KeyError):
                record.args = {k: _redact_value(v) for k, v in mapping.items()}
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)


def settings_secrets(settings: Any) -> list[str]:
    """The secret values a ``Settings`` holds (whatever fields this version has)."""
    values: list[str] = []
    for name in type(settings).model_fields:
        if any(word in name for word in ("api_key", "password", "secret", "token")):
            value = getattr(settings, name, "")
            if hasattr(value, "get_secret_value"):  # a pydantic SecretStr (JMBOORU_JM_PASSWORD)
                value = value.get_secret_value()
            if isinstance(value, str) and value:
                values.append(value)
    # The password of any URL-valued setting (JMBOORU_REDIS_URL, JMBOORU_PROXY, a booru URL).
    for name in type(settings).model_fields:
        value = getattr(settings, name, "")
        if isinstance(value, str) and "@" in value:
            values.extend(re.findall(r"://[^/\s:@]*:([^/\s@]+)@", value))
    return values


# What a log line is about, carried by the task (and copied into our thread pools' calls):
# set by the request-id middleware, and by the job runner for everything a job does.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("jmbooru_request_id", default="")
JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("jmbooru_job_id", default="")
CLIENT_ID: contextvars.ContextVar[str] = contextvars.ContextVar("jmbooru_client_id", default="")
SITE: contextvars.ContextVar[str] = contextvars.ContextVar("jmbooru_site", default="")
_CONTEXT = {"request_id": REQUEST_ID, "job_id": JOB_ID, "client_id": CLIENT_ID, "site": SITE}
_PAIR = re.compile(r"\b([a-z_]{2,24})=(\S+)")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, and the job/client/request/site it
    concerns (from the context, or from ``key=value`` pairs in the message)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": message,
        }
        for key, var in _CONTEXT.items():
            if value := var.get():
                line[key] = value
        for key, value in _PAIR.findall(message):
            line.setdefault(key, value)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _version, status = record.args
            line.update(client=str(client), method=str(method), path=str(path), status=status)
        if record.exc_info:
            line["exception"] = record.exc_text or redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


STARTUP_LOGGER = "jmbooru.startup"


def configure(settings: Any, level: str | None = None) -> None:
    """jmbooru's loggers at the configured level, a handler if nobody set one up, redaction, and
    with ``JMBOORU_LOG_FORMAT=json`` JSON lines on every handler (uvicorn's included)."""
    install_redaction(settings_secrets(settings))
    logging.getLogger("jmbooru").setLevel((level or settings.log_level).upper())
    # The one start-up line (mode, data folder, API key, proxy) shows at the default level too.
    logging.getLogger(STARTUP_LOGGER).setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if getattr(settings, "log_format", "text") == "json":
        formatter = JsonFormatter()
        for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "taskiq"):
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
