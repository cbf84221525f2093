"""Build engine: requests, plans and their renderings, the runner (podman-py), Buildah output
turned into typed events, facts read out of band, history. Never imports Textual (a test checks):
the CLI and the TUI are front ends over it. Modules that talk to podman import podman-py lazily
where they can, so planning and parsing stay cheap to import."""
