"""Outputs other than archives: ways finished or upstream work reaches readers (OPDS, ...)."""
