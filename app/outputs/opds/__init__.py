"""The OPDS 1.2 catalog (api.md Part 7): Atom feeds, OpenSearch, page streaming and CBZ acquisition.

The HTTP edge is ``app.api.opds``; this package renders documents and pages and knows nothing of
requests coming in.
"""
