"""Argv builders and output parsers for external tools; no I/O."""
