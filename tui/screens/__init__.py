"""Textual screens of buildcage."""
