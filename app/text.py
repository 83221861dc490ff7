"""Small helpers for the sentences users read: counts with the right noun, one full stop."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 post``, ``2 posts``, ``0 posts`` (``plural`` for nouns that do not just take an s)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def full_stop(text: str) -> str:
    """``text`` ending in exactly one sentence mark: pieces joined into a sentence may end in
    their own (``... format 'zip'.``), and adding one more made ``'zip'..``."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."
