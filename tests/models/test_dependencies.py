"""Dependencies point one way: edge imports models; models (and the virtual board) never import edge."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _edge_imports(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n == "edge" or n.startswith("edge.")]
    return found


def test_models_and_the_virtual_board_do_not_import_edge():
    assert _edge_imports(ROOT / "models") == []
    assert _edge_imports(ROOT / "hardware" / "twin") == []


def test_loading_every_models_module_loads_no_edge_module():
    mods = sorted(f"models.{p.stem}" for p in (ROOT / "models").glob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    try: importlib.import_module(m)\n"
            "    except ImportError as e:\n"
            "        if (e.name or '').split('.')[0] in ('torch', 'onnx', 'onnxscript'): continue\n"
            "        raise\n"
            "print(sorted(m for m in sys.modules if m == 'edge' or m.startswith('edge.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_edge_names_of_the_error_types_are_the_shared_ones():
    import edge.errors
    import firedamp.errors

    for name in ("FiredampError", "ConfigError", "LinkError", "ModelError", "DataError", "BrokerError"):
        assert getattr(edge.errors, name) is getattr(firedamp.errors, name)
