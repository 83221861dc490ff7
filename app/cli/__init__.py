"""The ``jmbooru`` command: ``serve``, ``worker``, ``booru``, ``gelbooru``, ``check``, ``jm`` and ``get``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from app.config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.config import Settings

    settings = Settings()
    if settings.redis_url and (problem := missing_redis_extra()):
        print(f"jmbooru: JMBOORU_REDIS_URL is set, but {problem}", file=sys.stderr)
        return 2
    if problem := storage_problem(settings):
        exit_now(f"jmbooru: {problem}")
    if args.workers > 1 and not settings.redis_url:
        print(
            "jmbooru: refusing to start several API processes without JMBOORU_REDIS_URL: a job started in "
            "one process could never notify a WebSocket connected to another. Set JMBOORU_REDIS_URL and run "
            "'jmbooru worker' processes, or use --workers 1.",
            file=sys.stderr,
        )
        return 2

    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        ws_per_message_deflate=False,  # progress frames are tiny; compression costs memory per socket
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_keep_alive=settings.keep_alive_seconds,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # X-Forwarded-* only from the proxies the operator names (JMBOORU_FORWARDED_ALLOW_IPS).
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return 0


REDIS_EXTRA_HINT = (
    "install the Redis extra: pip install 'jmbooru[redis]' (in a checkout: .venv/bin/pip install -e '.[redis]', "
    "or make dev)"
)


def missing_redis_extra() -> str | None:
    """The sentence to print when scale-out is asked for but its packages are not installed."""
    import importlib.util

    def installed(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    missing = [name for name in ("redis", "taskiq", "taskiq_redis") if not installed(name)]
    if not missing:
        return None
    return f"scale-out mode needs {', '.join(missing)}, which this installation lacks: {REDIS_EXTRA_HINT}."


def exit_now(sentence: str) -> NoReturn:
    """Print one sentence and leave with status 2 at once. After a failed S3 call, the S3 client's
    Rust threads can abort the interpreter's normal shutdown (SIGABRT instead of our status: the
    PyO3/tokio finalisation race, PyO3/pyo3-async-runtimes#40), so this skips it."""
    print(sentence, file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(2)


def storage_problem(settings: Settings) -> str | None:
    """Why the archive store cannot be used (JMBOORU_STORAGE=s3: no extra, no bucket setting, a bucket
    that does not exist, refused credentials, an endpoint that does not answer), checked before serving
    or taking jobs; None when it can."""
    if settings.storage == "local":
        return None
    import asyncio

    from app.archive_store import ArchiveStoreSetupError, build_archive_store
    from app.blocking import BlockingPool
    from app.storage import Storage

    pool = BlockingPool(1, "storage-check")
    try:
        store = build_archive_store(settings, Storage(settings.data_path), pool)
        asyncio.run(store.check())
    except ArchiveStoreSetupError as exc:
        return str(exc)
    finally:
        pool.shutdown(wait=False)
    return None


def _worker(args: argparse.Namespace) -> int:
    from app.config import Settings

    settings = Settings()
    if not settings.redis_url:
        print("jmbooru worker needs JMBOORU_REDIS_URL (redis://host:6379/0): it runs jobs from Redis.",
              file=sys.stderr)
        return 2
    if problem := missing_redis_extra():
        print(f"jmbooru worker: {problem}", file=sys.stderr)
        return 2
    if problem := storage_problem(settings):
        exit_now(f"jmbooru worker: {problem}")
    from app.worker import run_worker

    run_worker(settings, log_level=args.log_level)
    return 0


def _config(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.config_files import env_files, report

    settings = Settings()  # a value jmbooru cannot use: main() says which, in one sentence
    for path in env_files():
        print(f"# {'reads' if path.is_file() else 'no file'}: {path}")
    print("# precedence: environment > ./.env > user config file > default; secrets masked")
    for origin in report(settings):
        print(f"JMBOORU_{origin.name.upper()}={origin.value}  # {origin.source}")
    return 0


# Which module registers each command, so that running one builds only its own parser (the jm
# command's, say, reads the archive format registry). A command missing here still works: the
# full parser is built whenever the command word is not one of these.
_COMMAND_MODULES = {"booru": "booru", "gelbooru": "booru", "check": "booru", "jm": "jm", "get": "get",
                    "watch": "watch"}
_BUILT_IN = ("serve", "worker", "config")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, when ``argv`` starts with a command, enough of it to run that command."""
    import importlib

    from app import __version__

    parser = argparse.ArgumentParser(prog="jmbooru", description=__doc__)
    # The same version /v1/health reports, so a bug report can name both with one value.
    parser.add_argument("--version", action="version", version=f"jmbooru {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP/WebSocket API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes (more than 1 needs JMBOORU_REDIS_URL)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run jobs from Redis (scale-out mode, needs JMBOORU_REDIS_URL)")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(func=_worker)

    config = commands.add_parser("config", help="show the settings in force, where each came from (secrets masked)")
    config.set_defaults(func=_config)

    first = argv[0] if argv else None
    if first in _BUILT_IN:
        modules: tuple[str, ...] = ()
    elif first in _COMMAND_MODULES:
        modules = (_COMMAND_MODULES[first],)
    else:  # --help, --version, a typo: every command, so help and errors list them all
        modules = tuple(dict.fromkeys(_COMMAND_MODULES.values()))
    for name in modules:
        importlib.import_module(f"app.cli.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[0]


def _run(argv: Sequence[str] | None, *, process: bool = False) -> tuple[int, argparse.Namespace]:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)  # imports neither pydantic nor the settings: --help answers at once
    args = parser.parse_args(argv)
    if process and getattr(args, "exit_at_once", False):
        # A dataset command's own process does not look for pydantic plugins: pydantic reads the
        # entry points of every installed package for them when the first model is built (20 ms
        # before the first request in a development install), and they (logfire and the like) are
        # made to watch a server, not a one-off download. PYDANTIC_DISABLE_PLUGINS set to anything,
        # empty included, keeps pydantic's own behaviour; main() called from Python changes nothing.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        from app.cli.loop import start_up_without_gc

        start_up_without_gc()
    try:
        result: int = args.func(args)
    except Exception as exc:
        if isinstance(exc, UnicodeDecodeError | OSError):
            # A settings file jmbooru cannot read (pydantic-settings names no file): say which.
            from app.config_files import unreadable_file

            if (found := unreadable_file()) is None:
                raise
            print(f"jmbooru: the settings file {found[0]} cannot be read ({found[1]}); save it as UTF-8 text "
                  "or remove it.", file=sys.stderr)
            return 2, args
        # A pydantic ValidationError of the Settings model; anything else is a bug, with its traceback.
        if type(exc).__name__ != "ValidationError" or getattr(exc, "title", "") != "Settings":
            raise
        from pydantic import ValidationError

        from app.config import settings_sentence

        assert isinstance(exc, ValidationError)
        # Every command reads the settings somewhere; wherever it does, a value jmbooru cannot
        # use ends here as one sentence naming the variable and what it accepts.
        print(f"jmbooru: {settings_sentence(exc)}", file=sys.stderr)
        return 2, args
    return result, args


EXIT_INTERRUPTED = 130


def entry() -> None:
    """The ``jmbooru`` command itself (``main`` is for calling from Python)."""
    # httpx imports its own command line (click, rich, pygments: 25 ms here) whenever they are
    # installed, although jmbooru never calls it (encode/httpx#3547); None in sys.modules stops that
    # import, and httpx then defines a stub ``httpx.main``. Only this process's httpx is affected.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    code, args = _run(None, process=True)
    if code == EXIT_INTERRUPTED or getattr(args, "exit_at_once", False):
        # Ctrl-C: the partial files are gone and the user is waiting for the prompt. A dataset
        # command: every file is written and closed, every thread idle. Unloading the interpreter
        # (the imaging, PDF and curl libraries, pydantic's schemas) would take 50 ms to most of a
        # second more, for nothing.
        leave_at_once(code)
    sys.exit(code)


def leave_at_once(code: int) -> NoReturn:
    """Flush what was printed or logged, then end the process without the interpreter's teardown."""
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # stdout closed early (| head): what Python's own exit reports, 120
        code = code or 120
    os._exit(code)
