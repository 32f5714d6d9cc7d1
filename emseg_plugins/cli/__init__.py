"""Command-line entry points: ``pytc-train`` and ``emseg <subcommand>`` (one module per subcommand)."""
