"""The `firedamp` command table: help, unknown commands, and the rule that `firedamp --help` imports nothing heavy."""

import subprocess
import sys
from pathlib import Path

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


def test_the_edge_library_has_no_command_line_code():
    """Each edge subcommand's parser and run() live in edge/commands/ (edge/cli.py is their table), so the
    library modules the service, the demo and the tests import hold no argparse."""
    edge = Path(cli.__file__).parent
    library = [p for p in edge.glob("*.py") if p.name != "cli.py"]
    assert len(library) > 10
    assert [p.name for p in library if "argparse" in p.read_text()] == []
    for name, (module, _) in cli.COMMANDS.items():
        if module.startswith("edge.") and module != "edge.demo":
            assert module.startswith("edge.commands."), f"firedamp {name} is run from the library module {module}"


def test_help_does_not_import_torch_or_onnxruntime():
    code = "import sys; from edge import cli; cli.main(['--help']); print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


def test_board_and_demo_refuse_bad_scenario_arguments_with_one_line(capsys, tmp_path):
    link = str(tmp_path / "b1")
    assert cli.main(["board", "--scenario", "nope", "--link", link]) == 1
    assert "--scenario 'nope' is not one of: " in capsys.readouterr().err
    assert cli.main(["demo", "--speed", "0"]) == 1
    assert "firedamp: --speed must be > 0, got 0.0" in capsys.readouterr().err
    assert cli.main(["demo", "--duration", "30"]) == 1
    assert "--duration must be at least 60 simulated seconds" in capsys.readouterr().err
