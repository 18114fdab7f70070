"""A JSON file saved atomically with a CRC-32 (tmp, check, rename): the board's settings and runtime files.

File format: line 1 is the JSON object, line 2 the CRC-32 of line 1 in hex. A save writes <name>.tmp, reads
it back and checks it, moves the old file to <name>.bak (the last good one) and renames the new one into
place, so a power cut at any step leaves the old or the new file, never a mix. Loading a board that lost
power between the two renames (no <name>.json) takes the checked <name>.tmp and finishes the rename; otherwise
it falls back to <name>.bak; settings.py says what the values must be.
"""

import binascii
import json

try:
    import os
except ImportError:  # pragma: no cover - very old ports
    import uos as os  # type: ignore[no-redef]


def encode(values):
    """Settings -> file bytes: JSON line, then its CRC-32 as 8 hex digits."""
    body = json.dumps(values)
    return "%s\n%08x\n" % (body, binascii.crc32(body.encode()) & 0xFFFFFFFF)


def decode(data):
    """File text -> dict, or raise ValueError naming what is wrong (truncated, checksum, JSON)."""
    lines = data.split("\n")
    if len(lines) < 2 or len(lines[1]) != 8:
        raise ValueError("truncated")
    try:
        crc = int(lines[1], 16)
    except ValueError:
        raise ValueError("bad checksum field")
    if crc != binascii.crc32(lines[0].encode()) & 0xFFFFFFFF:
        raise ValueError("checksum mismatch")
    try:
        return json.loads(lines[0])
    except (ValueError, RuntimeError, MemoryError):  # RuntimeError: nesting too deep (CPython RecursionError)
        raise ValueError("bad JSON")


class Store:
    """Load and save one JSON file atomically under `root` (name without extension)."""

    def __init__(self, root, name="settings"):
        self.path = root + ("" if root.endswith("/") else "/") + name + ".json"
        self.bak = self.path[:-5] + ".bak"   # the .tmp path is made when a save needs it

    # file primitives: one place, so a test can interrupt a save at every step
    def _write(self, path, data):
        with open(path, "w") as f:
            f.write(data)

    def _read(self, path):
        with open(path) as f:
            return f.read()

    def _rename(self, src, dst):
        os.rename(src, dst)

    def _remove(self, path):
        try:
            os.remove(path)
        except OSError:
            pass

    def load_raw(self):
        """-> (dict or None, problem text or None). Tries the file (or the .tmp of a save cut short), then the last
        good copy."""
        name = self.path[self.path.rfind("/") + 1:]
        try:
            return decode(self._read(self.path)), None
        except OSError:
            # a cut between save()'s two renames leaves no file, the old one as .bak and the new one, whole
            # (read back before the renames), as .tmp: finish that save, so the board runs on it, no fault
            tmp = self.path[:-5] + ".tmp"
            try:
                values = decode(self._read(tmp))
                self._rename(tmp, self.path)
                return values, None
            except (OSError, ValueError):
                first = name + " missing"
        except ValueError as exc:  # on MicroPython a UnicodeError (bad bytes on flash) has no args
            first = name + " " + (str(exc.args[0]) if exc.args else "is not readable text")
        try:
            return decode(self._read(self.bak)), first + ", using last good"
        except (OSError, ValueError):
            return None, first + ", using defaults"

    def save(self, values):
        """Write atomically. Raises OSError/ValueError if the written copy does not read back equal."""
        data = encode(values)
        tmp = self.path[:-5] + ".tmp"
        self._write(tmp, data)
        if self._read(tmp) != data:
            raise ValueError("settings read back differ")
        try:
            os.stat(self.path)
        except OSError:
            pass        # the first save: no old file to keep
        else:
            self._remove(self.bak)
            self._rename(self.path, self.bak)
        self._rename(tmp, self.path)
