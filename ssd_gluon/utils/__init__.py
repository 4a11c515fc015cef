"""Helpers with no knowledge of detection: user errors, atomic file writes, the command-line
entry point and matplotlib figures."""
