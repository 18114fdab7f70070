"""records.txt: one line per state-changing console action, kept on flash (`log` shows the newest).

The file is rotated at 4 KB (records.txt.old keeps the previous one), so the two never exceed ~8 KB.
"""

import os

from compat import const

_MAX = const(4096)   # bytes per records file


def append(path, line):
    """Add one line (with its newline). Raises OSError (or MemoryError) if flash refuses it."""
    with open(path, "a") as f:
        f.write(line)
    if os.stat(path)[6] > _MAX:  # rotate: records.txt.old keeps the previous file
        try:
            os.remove(path + ".old")
        except OSError:
            pass
        os.rename(path, path + ".old")


def last(path, n):
    """-> (number of records, the newest n of them, oldest first). Reads line by line: little RAM."""
    lines = []
    count = 0
    for name in (path + ".old", path):   # oldest first
        try:
            with open(name) as f:
                for line in f:
                    if line.strip():
                        count += 1
                        lines.append(line.rstrip())
                        if len(lines) > n:
                            lines.pop(0)
        except OSError:
            pass
    return count, lines
