"""Where finished or upstream work reaches readers besides the 30-minute archive: the reader library
and its scan triggers, the OPDS catalog."""
