"""buildcage's Textual stylesheets, shipped in the wheel as the tui.styles package."""
