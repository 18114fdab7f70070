"""The shared wire-protocol vectors are self-consistent: every valid line carries a correct CRC-32 and fits."""

import binascii
import json
from pathlib import Path

VECTORS = json.loads((Path(__file__).parent / "vectors" / "frames.json").read_text())


def test_valid_vectors_have_correct_crc_and_length():
    for item in VECTORS["valid"]:
        line = item["line"]
        body, crc = line.rsplit("*", 1)
        assert int(crc, 16) == binascii.crc32(body.encode()) & 0xFFFFFFFF, line
        assert len(line.encode()) + 1 <= VECTORS["max_line_bytes"], line
        assert line.startswith("$FD1,") and item["fields"]["type"] == line.split(",")[1]


def test_every_rejection_reason_is_covered():
    reasons = {item["reason"] for item in VECTORS["invalid"]}
    assert reasons == {"too_long", "no_start", "version", "no_checksum", "checksum", "fields", "value"}
