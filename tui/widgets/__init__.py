"""Textual widgets of buildcage."""
