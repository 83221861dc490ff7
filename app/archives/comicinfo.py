"""``ComicInfo.xml`` for CBZ files, valid against the anansi-project ComicInfo schema (v2.1 draft).

Only elements and attributes of that schema are written, in the order of its ``xs:sequence``
(Title, Series, Summary, Writer, Tags, Web, PageCount, Characters, Pages); Komga, Kavita,
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


def _page_size(path: Path) -> tuple[int, int] | None:
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
