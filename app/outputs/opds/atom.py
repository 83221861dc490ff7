"""Atom/OPDS documents written as text: Atom is the default (unprefixed) namespace.

KOReader's OPDS parser reads element names literally (``entry``, ``link``, ``Url``), so prefixed
Atom (``atom:entry``) would be invisible to it; the documents are therefore written by hand with
Atom as the default namespace rather than through a serializer that picks prefixes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

ATOM_NS = "http://www.w3.org/2005/Atom"
OPDS_NS = "http://opds-spec.org/2010/catalog"
PSE_NS = "http://vaemendis.net/opds-pse/ns"
OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"

NAVIGATION = "application/atom+xml;profile=opds-catalog;kind=navigation"
ACQUISITION = "application/atom+xml;profile=opds-catalog;kind=acquisition"
OPENSEARCH = "application/opensearchdescription+xml"

REL_IMAGE = "http://opds-spec.org/image"
REL_THUMBNAIL = "http://opds-spec.org/image/thumbnail"
REL_ACQUISITION = "http://opds-spec.org/acquisition"
REL_STREAM = "http://vaemendis.net/opds-pse/stream"

# Characters XML 1.0 cannot carry at all (JM titles sometimes hold control characters).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def attr(value: str) -> str:
    """A double-quoted attribute value: KOReader's XML lexer knows no other quote (a value quoted
    with ' would run into the next attribute)."""
    escaped = escape(_NOT_XML.sub("", value), {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
    return f'"{escaped}"'


def timestamp(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if seconds is None else seconds))


@dataclass(frozen=True)
class Link:
    rel: str
    href: str
    type: str
    title: str = ""
    count: int | None = None  # pse:count, on a stream link

    def render(self) -> str:
        parts = [f"rel={attr(self.rel)}", f"href={attr(self.href)}", f"type={attr(self.type)}"]
        if self.title:
            parts.append(f"title={attr(self.title)}")
        if self.count is not None:
            parts.append(f'pse:count="{self.count}"')
        return f"<link {' '.join(parts)}/>"


@dataclass
class Entry:
    id: str
    title: str
    updated: str
    links: list[Link] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    summary: str = ""
    content: str = ""  # a navigation entry's description (text)

    def render(self) -> str:
        out = ["<entry>", f"<title>{text(self.title)}</title>", f"<id>{text(self.id)}</id>",
               f"<updated>{self.updated}</updated>"]
        out += [f"<author><name>{text(name)}</name></author>" for name in self.authors if name.strip()]
        out += [f"<category term={attr(term)} label={attr(term)}/>" for term in self.categories if term.strip()]
        if self.summary:
            out.append(f'<summary type="text">{text(self.summary)}</summary>')
        if self.content:
            out.append(f'<content type="text">{text(self.content)}</content>')
        out += [link.render() for link in self.links]
        out.append("</entry>")
        return "".join(out)


@dataclass
class Feed:
    id: str
    title: str
    self_href: str
    kind: str  # NAVIGATION or ACQUISITION
    entries: list[Entry] = field(default_factory=list)
    next_href: str | None = None
    updated: str = field(default_factory=timestamp)

    def render(self) -> str:
        links = [
            Link("self", self.self_href, self.kind),
            Link("start", "/opds", NAVIGATION, "jmbooru"),
            Link("search", "/opds/search.xml", OPENSEARCH, "Search JM"),
        ]
        if self.next_href:
            links.append(Link("next", self.next_href, ACQUISITION, "Next page"))
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<feed xmlns="{ATOM_NS}" xmlns:opds="{OPDS_NS}" xmlns:pse="{PSE_NS}">'
            f"<id>{text(self.id)}</id><title>{text(self.title)}</title><updated>{self.updated}</updated>"
            "<author><name>jmbooru</name></author>"
        )
        body = "".join(link.render() for link in links) + "".join(e.render() for e in self.entries)
        return head + body + "</feed>\n"


def opensearch_description(template: str) -> str:
    """The OpenSearch 1.1 description: one Url whose template holds ``{searchTerms}`` only
    (KOReader substitutes that one and would send any other ``{...}`` literally)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<OpenSearchDescription xmlns="{OPENSEARCH_NS}">'
        "<ShortName>jmbooru</ShortName>"
        "<Description>Search JM albums by words, tags or an album id</Description>"
        "<InputEncoding>UTF-8</InputEncoding><OutputEncoding>UTF-8</OutputEncoding>"
        f'<Url type="{ACQUISITION}" template={attr(template)}/>'
        "</OpenSearchDescription>\n"
    )
