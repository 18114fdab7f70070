"""The `firedamp` subcommands that drive edge/'s library: one module each with `add_arguments(parser)` and
`run(args) -> int`, listed in edge/cli.py's table (the module's docstring is its `--help` text unless it sets one)."""
