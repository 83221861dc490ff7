"""The flags of the dataset commands (``jmbooru booru``, ``jmbooru gelbooru``, ``jmbooru check``),
the original Gelbooru-API-Downloader's names included."""

from __future__ import annotations

import argparse
from typing import Any

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_MODES = {"0": "report", "1": "fix", "2": "delete", "report": "report", "fix": "fix", "delete": "delete"}


class OptionalBool(argparse.Action):
    """``--flag``, ``--flag true`` or ``--flag=false``. The original flags took no value, so a word that
    is not a boolean (``--remove_underscore "cat_ears"``) is kept aside as the positional TAGS."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "?")
        kwargs.setdefault("metavar", "true|false")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        word = str(values).strip().lower() if values is not None else "true"
        if word in _TRUE or word in _FALSE:
            setattr(namespace, self.dest, word in _TRUE)
            return
        setattr(namespace, self.dest, True)
        namespace.stray = [*(getattr(namespace, "stray", None) or []), values]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def mode(text: str) -> str:
    if text.lower() not in _MODES:
        raise argparse.ArgumentTypeError("use report, fix or delete (or the original 0, 1, 2)")
    return _MODES[text.lower()]


def add_site_flags(parser: argparse.ArgumentParser, title: str, *, login: bool = False) -> None:
    site = parser.add_argument_group(title)
    site.add_argument("--api-key", help="your API key (Gelbooru: or the whole '&api_key=...&user_id=...' line "
                      "from the account options page)")
    site.add_argument("--user-id", help="Gelbooru sites: your numeric user id (not the user name)")
    if login:
        site.add_argument("--login", help="Danbooru: your user name (with --api-key)")
    site.add_argument("--url", help="site address (default JMBOORU_<SITE>_URL)")
    site.add_argument("--timeout", type=float, help="seconds to wait for each answer (default 30)")
    site.add_argument("--rate", type=float, help="API requests per second (default JMBOORU_<SITE>_API_RATE)")
    site.add_argument("-v", "--verbose", action="store_true", help="log retries and per-image failures to stderr")


def add_dataset_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("tags", nargs="?", metavar="TAGS", help='tags as on the site, e.g. "hifumi_(blue_archive) rating:general"')
    p.add_argument("--tags", dest="tags_opt", metavar="TAGS", help="the same as the positional TAGS")
    p.add_argument("--max", "--max-images", "--max_images_number", dest="max_images", type=positive_int, default=50,
                   metavar="N", help="how many images (default 50)")
    p.add_argument("--out", "-o", "--download_dir", dest="out", default="images", metavar="DIR",
                   help="folder to download into (default ./images)")
    p.add_argument("--workers", "--max_workers", dest="workers", type=positive_int, metavar="N",
                   help="concurrent image downloads (default JMBOORU_DOWNLOAD_WORKERS, 8)")
    p.add_argument("--unit", type=int, metavar="N",
                   help="accepted for compatibility and ignored: the original rounded up to a multiple of --unit; "
                   "jmbooru fetches exactly --max")
    p.add_argument("--overwrite-captions", action="store_true", help="rewrite captions that already exist")
    p.add_argument("--check", "--check_images_mode", dest="check", type=mode, metavar="MODE",
                   help="check the folder afterwards: report, fix or delete (or 0, 1, 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    cap = p.add_argument_group("captions")
    cap.add_argument("--remove-underscore", "--remove_underscore", dest="remove_underscore", action=OptionalBool,
                     help="'_' becomes a space, except in tags of 3 characters or fewer like ^_^ (default true)")
    cap.add_argument("--keep-underscores", dest="remove_underscore", action="store_const", const=False,
                     help="keep tags in snake_case")
    cap.add_argument("--use-escape", "--use_escape", dest="escape", action=OptionalBool,
                     help=r"write ( ) as \( \) for prompt syntax (default true)")
    cap.add_argument("--no-escape", dest="escape", action="store_const", const=False, help="leave parentheses alone")
    cap.add_argument("--add_comma", "--add-comma", dest="add_comma", action=OptionalBool,
                     help="join tags with ', ' (true, the default) or with a space (false)")
    cap.add_argument("--separator", help="join tags with this text instead (default ', ')")
    cap.add_argument("--category-order", metavar="LIST", help="e.g. character,copyright,artist,general,metadata")
    cap.add_argument("--drop-categories", metavar="LIST", help="e.g. metadata,deprecated")

    filt = p.add_argument_group("filters")
    filt.add_argument("--rating", metavar="LIST", help="allowed ratings, e.g. general,sensitive")
    filt.add_argument("--min-width", type=int, metavar="PX")
    filt.add_argument("--min-height", type=int, metavar="PX")
    filt.add_argument("--min-score", type=int, metavar="N")
    filt.add_argument("--blacklist", metavar="TAGS", help='skip posts with any of these tags, e.g. "comic monochrome"')


def search_tags(args: argparse.Namespace) -> tuple[str, str | None]:
    """The tags a dataset command searches for (TAGS, ``--tags``, or the one word an original boolean
    flag left aside), made of visible words; or the sentence to print instead (the second value)."""
    from app.sources.booru.values import is_blank, visible_words

    stray = getattr(args, "stray", None) or []
    tags = args.tags or args.tags_opt
    if args.tags and args.tags_opt and " ".join(args.tags.split()) != " ".join(args.tags_opt.split()):
        return "", "give the tags once: either as TAGS or with --tags."
    if tags is None and len(stray) == 1:
        tags, stray = stray[0], []
    if stray:
        return "", f"unexpected value {stray[0]!r}; true/false flags take true or false."
    if not tags or is_blank(tags):  # a zero-width space alone would download the whole site
        example = "gelbooru" if args.command == "gelbooru" else f"booru {args.site}"
        return "", f'give the tags to search for, e.g. jmbooru {example} "cat_ears solo" --max 20.'
    return " ".join(visible_words(tags)), None


def site_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What the site flags change in the site's settings (None: not given, the setting stands)."""
    return {"url": args.url, "api_key": args.api_key, "user_id": args.user_id,
            "login": getattr(args, "login", None), "timeout": args.timeout, "rate": args.rate}


# The argument groups whose values pydantic checks once it is loaded (caption, filter and trainer
# options), after a command's head start would have asked the site for a page.
CHECKED_LATER_GROUPS = ("captions", "filters", "trainer-ready datasets")


def note_flags_checked_later(parser: argparse.ArgumentParser) -> None:
    """Record in the parser's defaults (``checked_later``: dest -> default) the flags of
    ``CHECKED_LATER_GROUPS`` that can hold a bad value; switches (true/false, store) cannot."""
    later = {
        action.dest: action.default
        for group in parser._action_groups if group.title in CHECKED_LATER_GROUPS
        for action in group._group_actions if action.nargs != 0 and not isinstance(action, OptionalBool)
    }
    parser.set_defaults(checked_later=later)


def sets_flags_checked_later(args: argparse.Namespace) -> bool:
    """Whether ``args`` give any flag ``note_flags_checked_later`` recorded a value other than its default."""
    return any(getattr(args, dest, default) != default for dest, default in getattr(args, "checked_later", {}).items())
