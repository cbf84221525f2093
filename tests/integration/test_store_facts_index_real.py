"""Review: a base pulled through an image index (a manifest list). The publish phase's
``buildah inspect --format '{{.FromImageDigest}}'`` gives the digest of the manifest the store
keeps as ``manifest`` (the platform's instance); the record's ``digest`` field that
tui.engine.store_files reads is the index's. A build with nothing to publish must report the
same base facts as the publish phase for the same store (as test_store_facts_real asserts for a
plain image)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from podman_helpers import REGISTRY, build, registry_auth
from test_store_facts_real import copy_context

from tui.engine.events import BaseImages, Failed, PhaseDone
from tui.engine.session import Engine

REPO = "buildcage/busybox"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def push_index(tag: str) -> str:
    """An index over the local busybox base's manifest, as REPO:tag; returns its reference."""
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{REPO}/manifests/latest",
                                     headers={"Accept": f"{MANIFEST}, {DOCKER}",
                                              **registry_auth()})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
        media, digest = response.headers["Content-Type"], response.headers["Docker-Content-Digest"]
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": media, "digest": digest, "size": len(body),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    put = urllib.request.Request(f"http://{REGISTRY}/v2/{REPO}/manifests/{tag}", data=index,
                                 method="PUT", headers={"Content-Type": INDEX, **registry_auth()})
    with urllib.request.urlopen(put, timeout=5):
        pass
    return f"{REGISTRY}/{REPO}:{tag}"


def test_a_base_pulled_through_an_index_has_the_publish_phases_digest(
        engine: Engine, tmp_path: Path, run_id: str) -> None:
    base = push_index(f"review-index-{run_id}")
    ctx = copy_context(tmp_path, run_id, base)
    project = f"facts-index-{run_id}"
    here = build(engine, ctx, profile="project", project=project)
    assert here.done.status == "succeeded", here.of(Failed)
    assert "publish" not in [e.phase for e in here.of(PhaseDone)]
    pushed = build(engine, ctx, profile="project", project=project,
                   push=f"{REGISTRY}/it/facts-index-{run_id}:latest")
    assert pushed.done.status == "succeeded", pushed.of(Failed)
    (here_bases,), (pushed_bases,) = here.of(BaseImages), pushed.of(BaseImages)
    assert here_bases.images == pushed_bases.images
