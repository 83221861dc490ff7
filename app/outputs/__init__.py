"""Where finished work goes besides the 30-minute archive: the reader library and its scan triggers."""
