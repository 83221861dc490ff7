"""``python -m app.cli``: the same as the ``jmbooru`` command."""

from app.cli import entry

entry()
