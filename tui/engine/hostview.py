"""The host's image store as a read-only (``host-ro``) builder sees it: the three directories an
additional image store is read from, each through an overlay whose upper layer is the builder's
own, and, made by every phase before Buildah starts, its own copy of the image and layer lists
and lock files of its own.

Why (measured here, README "Findings"):

- containers/storage (v1.43, as in Debian's Buildah 1.28 and podman 4.3) locks an additional
  image store with fcntl read locks on its ``overlay-images/images.lock`` and
  ``overlay-layers/layers.lock`` (seen with strace in a builder; no other file of that store).
  With the host store bind-mounted, those are the host podman's own lock files: a builder holding
  one stalls every podman write on the machine, and when Buildah creates a container from a host
  image it holds images.lock while it asks for layers.lock, the order podman's own writes take the
  other way round. A host-ro build and native ``podman build``s deadlocked so, for as long as both
  lived: c/storage retries the kernel's EDEADLK every 10 ms, forever.
- The whole store showed the builder more lock files (``storage.lock``, libpod's database, which
  podman flocks for every command), its volumes and its secrets.
- The read-only bind was not read-only: the host's ``overlay`` directory is a mount point of its
  own, and ``:ro`` covers only the top of podman's recursive bind, so a builder could change the
  files of every host image (and reach the running containers' root filesystems mounted there).
  Buildah wrote there itself: it makes ``merged`` directories in a host layer's directory to diff
  a commit against it (fuse-overlayfs means a naive diff).

So the builder gets ``overlay`` (layer contents), ``overlay-images`` (manifests, configs) and
``overlay-layers`` (tar-split data) as podman overlay volumes (``-v SRC:DST:O``): what it writes
lands in an upper layer of its own, removed with the container, and no mount under the source
comes along. A lock taken through the overlay is on the overlay's own inode (measured on Linux
6.18: a read lock held on images.lock through it left the host's file unlocked), and every phase
first replaces the lock files and the two lists with its own copies (``prelude``):

- ``images.lock``, ``layers.lock``: private files holding a 64-byte "last writer" record that
  never changes, so Buildah reads the lists once (a shorter file reads as changed at every lock,
  and the lists would be parsed again each time);
- ``images.json``, ``layers.json``: copied when the phase starts. The phase keeps that view: a
  name the host moves meanwhile still means the image it named at the start; an image the host
  removes (by force: the build's images are pinned) makes the build fail where it reads the
  missing files. The host store stays read-only to the builder either way.

The copies are taken without the host's locks (nothing of buildcage's takes them): podman
replaces each list whole (write, then rename), and layers.json is copied before and after
images.json until both copies agree (``prelude``), so every image the copy lists has its layers
in it. A layer podman is still writing is listed without digests and used by no listed image,
so nothing in the build reaches it.
"""

from __future__ import annotations

import shlex

PARTS = ("overlay", "overlay-images", "overlay-layers")
"""The host store's directories a builder reads (everything an overlay additional store is)."""

LISTS = ("overlay-layers/layers.json", "overlay-images/images.json")
"""Copied by each phase (``prelude``: layers, images, layers again until both agree)."""

LOCKS = ("overlay-layers/layers.lock", "overlay-images/images.lock")
"""Replaced by each phase with files of its own."""

LAST_WRITER_SHELL = "printf %064d 0"
"""Writes the lock files' 64-byte record (c/storage compares it with what it saw last)."""


AGREE_TRIES = 50
"""Rounds of copies (0.1 s apart) before a phase takes lists that may disagree: podman writes
each list in milliseconds; a host that changes its store for five seconds on end is not one a
build can take a consistent view of anyway (Buildah then says which image it cannot read)."""


def prelude(shared: str) -> list[str]:
    """Shell lines a phase runs before Buildah, for the host store mounted at ``shared``.

    layers.json, then images.json, then layers.json again, from the host (through the overlay,
    until a list is replaced by its copy, reading it reads the host's file): when both copies of
    layers.json agree, no layer came or went meanwhile, so every image in the copy of
    images.json has its layers in the copy of layers.json (c/storage adds a layer before the
    image that uses it and removes an image before its layers). Else again. Seen without this:
    "checking if cached image exists from a previous build: getting top layer info: layer not
    known" when the host added an image between the two copies (Buildah's cache lookup reads
    every image)."""
    layers, images = (shlex.quote(f"{shared}/{rel}") for rel in LISTS)
    lines = [
        f"if [ -e {layers} ] && [ -e {images} ]; then n=0; while :; do "
        f"cp {layers} {layers}.a; cp {images} {images}.copy; cp {layers} {layers}.copy; "
        f"if cmp -s {layers}.a {layers}.copy; then break; fi; n=$((n+1)); "
        f"if [ $n -ge {AGREE_TRIES} ]; then break; fi; sleep 0.1; done; "
        f"rm -f {layers}.a; mv {layers}.copy {layers}; mv {images}.copy {images}; else "
        + "; ".join(f"if [ -e {path} ]; then cp {path} {path}.copy; mv {path}.copy {path}; fi"
                    for path in (layers, images)) + "; fi"]
    lines += [f"{LAST_WRITER_SHELL} > {shlex.quote(f'{shared}/{rel}')}" for rel in LOCKS]
    return lines


def on_store(shared: str, argv: list[str]) -> list[str]:
    """``argv`` run after the ``prelude``: for a container on the host store's overlays that is
    no phase (a sweeper, the load's export, the layer reader)."""
    return ["sh", "-ec", "; ".join([*prelude(shared), "exec " + shlex.join(argv)])]
