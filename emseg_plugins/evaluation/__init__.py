"""Metrics and metric tables."""
