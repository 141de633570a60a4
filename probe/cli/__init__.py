"""The ``probe`` command line: one module per subcommand, shared flag groups in :mod:`probe.cli.flags`."""

__all__: list[str] = []
