"""Build engine: pure-Python logic, free of textual and podman imports."""
