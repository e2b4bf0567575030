"""Placeholder: filled in by the issue "Samplers at the frontier"."""
