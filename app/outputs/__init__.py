"""What jmbooru makes besides the 30-minute archive: dataset exports and de-duplication, the reader
library and its scan triggers, the OPDS catalog."""
