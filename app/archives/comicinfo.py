"""``ComicInfo.xml`` for CBZ files, valid against the anansi-project ComicInfo schema (v2.1 draft).

Only elements and attributes of that schema are written, in the order of its ``xs:sequence``
(Title, Series, Number, Count, Summary, Writer, Tags, Web, PageCount, Characters, Pages); Komga, Kavita,
Mihon and Panels read them. Page indexes are 0-based, in the order of the images in the archive.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from app.archives.base import Book

COMIC_INFO_NAME = "ComicInfo.xml"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot hold


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def webp_size(path: Path) -> tuple[int, int] | None:
    """A WebP's width and height from its first chunk header (Pillow would read the whole file)."""
    with open(path, "rb") as fh:
        head = fh.read(30)
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk, data = head[12:16], head[20:30]
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        return int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
    if chunk == b"VP8L" and data[0] == 0x2F:  # lossless: 14-bit width-1 and height-1 after the signature
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":  # lossy: after the frame tag and start code
        return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _page_size(path: Path) -> tuple[int, int] | None:
    if path.suffix.lower() == ".webp":
        return webp_size(path)
    from PIL import Image  # here, not at import: the dataset CLI never needs Pillow's plugins

    try:
        with Image.open(path) as picture:  # reads the header only
            return picture.size
    except (OSError, ValueError):
        return None


def comic_info_xml(book: Book, pages: list[Path]) -> bytes:
    root = ET.Element("ComicInfo")

    def text(name: str, value: str) -> None:
        if value:
            ET.SubElement(root, name).text = _clean(value)

    text("Title", book.title)
    text("Series", book.series or book.title)
    text("Number", book.number)
    text("Count", str(book.count) if book.count else "")
    text("Summary", book.summary)
    text("Writer", ", ".join(book.writers))
    text("Tags", ",".join(tag.replace(",", " ") for tag in book.tags))  # readers split Tags on commas
    text("Web", book.web)
    text("PageCount", str(len(pages)))
    text("Characters", ", ".join(book.characters))
    listing = ET.SubElement(root, "Pages")
    for index, path in enumerate(pages):
        attrs = {"Image": str(index)}
        if index == 0:
            attrs["Type"] = "FrontCover"
        attrs["ImageSize"] = str(path.stat().st_size)
        if index in book.bookmarks:
            attrs["Bookmark"] = _clean(book.bookmarks[index])
        size = _page_size(path)
        if size is not None:
            attrs["ImageWidth"], attrs["ImageHeight"] = str(size[0]), str(size[1])
        ET.SubElement(listing, "Page", attrs)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
