"""buildcage: Buildah builds in unprivileged podman containers, with a TUI and a CLI."""
