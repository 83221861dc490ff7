"""What jmbooru makes from finished downloads besides the archive itself (dataset exports, de-duplication)."""
