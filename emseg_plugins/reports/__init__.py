"""Comparison runs over a config grid, and their reports (tables, CSV, plots)."""
