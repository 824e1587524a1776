"""Comparison tables and run reports."""
