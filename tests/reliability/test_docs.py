"""docs/safety.md and docs/security.md name the tests behind their claims: every named test must exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[\w-]+\])?`")
SHORT = re.compile(r"`::(\w+)(?:\[[\w-]+\])?`")


def references(doc: str) -> list[tuple[str, str]]:
    """(file, test) for every `tests/x.py::name` and every following `::name` (same file as the last one)."""
    out = []
    current = None
    for m in re.finditer(rf"{REF.pattern}|{SHORT.pattern}", doc):
        if m.group(1):
            current = m.group(1)
            out.append((current, m.group(2)))
        else:
            assert current, f"`::{m.group(3)}` before any file is named"
            out.append((current, m.group(3)))
    return out


@pytest.mark.parametrize("name", ["safety.md", "security.md"])
def test_every_test_the_document_names_exists(name):
    refs = references((ROOT / "docs" / name).read_text())
    assert len(refs) >= 25
    missing = [f"{f}::{t}" for f, t in refs
               if not (ROOT / f).exists() or not re.search(rf"^def {t}\(", (ROOT / f).read_text(), re.M)]
    assert not missing, f"{name} names tests that do not exist: {missing}"
