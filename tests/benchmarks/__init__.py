"""Standalone benchmark scripts (not collected by pytest; run them directly)."""
