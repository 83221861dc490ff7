"""Join one-page PDFs into one, with the document info and the chapter outline: run as a child process.

qpdf (through pikepdf) holds the GIL for as long as it reads and writes, seconds for a big album,
which would freeze the server's event loop; in a process of its own it freezes nothing. qpdf's own
page assembly (``pikepdf.Job``) reads each page's data only when it writes it (pikepdf's page
copying would first load every image into memory), and ``decodeLevel: none`` copies image data
as it is. A second pass adds what Job cannot: the outline and the document info.

    python -I app/archives/pdf_join.py SPEC.json      (it imports nothing of jmbooru)

SPEC: ``{"pages": [one-page PDF paths], "joined": scratch path, "out": output path, "info":
{"/Title": ...}, "bookmarks": [[0-based page index, title], ...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def join(spec: dict[str, Any]) -> None:
    import pikepdf

    pikepdf.Job({"empty": "", "outputFile": spec["joined"], "pages": [{"file": f} for f in spec["pages"]],
                 "decodeLevel": "none", "objectStreams": "generate"}).run()
    with pikepdf.open(spec["joined"], access_mode=pikepdf.AccessMode.stream) as pdf:
        for key, value in spec["info"].items():
            pdf.docinfo[key] = value
        if spec["bookmarks"]:
            with pdf.open_outline() as outline:
                for page_index, title in spec["bookmarks"]:
                    outline.root.append(pikepdf.OutlineItem(title, page_index))
            pdf.Root.PageMode = pikepdf.Name.UseOutlines
        pdf.save(spec["out"], stream_decode_level=pikepdf.StreamDecodeLevel.none,
                 object_stream_mode=pikepdf.ObjectStreamMode.generate)


def main(argv: list[str]) -> int:
    join(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
