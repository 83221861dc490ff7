"""Where settings come from: the environment, ``./.env``, and the user's config file, in that
order of precedence; and a report of which one set each value (``jmbooru config``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

PREFIX = "JMBOORU_"
SECRET_WORDS = ("api_key", "password", "secret", "token")


def user_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """``JMBOORU_ENV_FILE``, or ``$XDG_CONFIG_HOME/jmbooru/jmbooru.env`` (``~/.config/...``)."""
    environ = os.environ if environ is None else environ
    named = environ.get("JMBOORU_ENV_FILE", "").strip()
    if named:
        return Path(named).expanduser()
    base = environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "jmbooru" / "jmbooru.env"


def env_files() -> tuple[Path, ...]:
    """The dotenv files to read, lowest precedence first (pydantic-settings: later files win)."""
    return (user_config_file(), Path(".env"))


def unreadable_file() -> tuple[Path, str] | None:
    """The first settings file that cannot be read as UTF-8 text, and why; None when every one can.
    (pydantic-settings stops at such a file with a bare UnicodeDecodeError, naming no file.)"""
    for path in env_files():
        try:
            path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            continue
        except UnicodeDecodeError as exc:
            return path, f"byte {exc.start + 1} is not UTF-8"
        except OSError as exc:
            return path, exc.strerror or type(exc).__name__
    return None


def is_secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


# scheme://user:password@host..., in any setting: JMBOORU_PROXY, JMBOORU_REDIS_URL, a booru URL.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@,]*)@")


def mask_url_credentials(text: str) -> str:
    """``http://user:***@host:port``: the password of every URL in ``text`` masked, the host kept.

    A user name alone (``http://token@host``) is masked too, since some services put the secret there.
    """

    def masked(match: re.Match[str]) -> str:
        scheme, userinfo = match.group(1), match.group(2)
        user, has_password, _ = userinfo.partition(":")
        if has_password and user:
            return f"{scheme}{user}:***@"
        return f"{scheme}***@"

    return _URL_CREDENTIALS.sub(masked, text)


def mask(name: str, value: Any) -> str:
    if hasattr(value, "get_secret_value"):  # a pydantic SecretStr: measure the secret, not its stars
        value = value.get_secret_value()
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    text = mask_url_credentials(text)
    if is_secret(name) and text:
        return "***" + (f" ({len(text)} characters)" if len(text) >= 4 else "")
    return text


@dataclass(frozen=True)
class Origin:
    name: str
    value: str
    source: str


def report(settings: Any) -> list[Origin]:
    """Every setting with its value in force (secrets masked) and where it came from."""
    files = [(path, {k.upper(): v for k, v in dotenv_values(path).items()}) for path in env_files()
             if path.is_file()]
    environ = {k.upper(): v for k, v in os.environ.items()}
    out = []
    for name in type(settings).model_fields:
        key = PREFIX + name.upper()
        if key in environ:
            source = "environment"
        else:
            source = "default"
            for path, values in files:  # the later file wins
                if key in values:
                    source = str(path)
        out.append(Origin(name, mask(name, getattr(settings, name)), source))
    return out
