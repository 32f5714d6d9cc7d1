"""Whole-volume prediction and prediction writers."""
