"""The `firedamp` command table: help, unknown commands, and the rule that `firedamp --help` imports nothing heavy."""

import subprocess
import sys

from edge import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name} " in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_every_command_module_exists_and_has_the_entry_points():
    for name in cli.COMMANDS:
        parser, module = cli.build_parser(name)
        assert callable(module.run), name
        assert parser.prog == f"firedamp {name}"


def test_help_does_not_import_torch_or_onnxruntime():
    code = "import sys; from edge import cli; cli.main(['--help']); print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")
