"""Example emseg-plugins plugin package."""
