"""jmbooru: a self-hosted download server for JM comics and Gelbooru datasets."""

__version__ = "0.1.0"
