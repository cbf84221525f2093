"""Security facts from real `podman inspect` data of builder containers (tests/data/inspect,
captured from containers buildcage created for each profile), and the ratings built on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.engine.facts import MountFact, facts_from_inspect, read_engine_sockets, read_host_store
from tui.engine.hostview import PARTS
from tui.engine.profiles import BUILTIN_PROFILES, HOST_STORE
from tui.engine.summary import security_rating, speed_rating

INSPECT = Path(__file__).resolve().parents[1] / "data" / "inspect"


def facts(name: str):
    # As the probe does: a created container's inspect shows no overlay volume, so host-ro's
    # three views of the host store are passed as the container was created with them.
    overlays = [{"source": f"{HOST_STORE}/{part}", "destination": f"/var/lib/shared/{part}",
                 "options": []} for part in PARTS] if name == "host-ro" else None
    return facts_from_inspect(json.loads((INSPECT / f"{name}.json").read_text()),
                              overlay_volumes=overlays)


@pytest.mark.parametrize(("name", "access"), [
    ("host-ro", "read-only"), ("isolated", "none"), ("project", "none"), ("host-rw", "read-write"),
])
def test_host_store_access_is_read_from_the_mounts(name, access):
    assert facts(name).host_store == access


def test_isolated_runs_in_its_own_user_namespace():
    assert facts("isolated").userns == "0:200000:65536"
    assert facts("host-ro").userns == "host (none)"


def test_common_facts_of_every_builder():
    for name in ("host-ro", "isolated", "project", "host-rw"):
        f = facts(name)
        assert not f.privileged
        assert f.engine_sockets == ()
        assert f.devices == ("/dev/fuse",)
        assert "SYS_CHROOT" in f.effective_caps and "SYS_ADMIN" not in f.effective_caps
        assert f.pids_limit == 4096
        assert set(f.ulimits) == {"nofile=1024:1024", "nproc=4096:4096"}
        assert {m.target for m in f.mounts} >= {"/context", "/etc/containers/storage.conf"}


def test_security_ratings_order_the_profiles_as_the_article_does():
    scores = {n: security_rating(facts(n)).score for n in ("isolated", "project", "host-ro",
                                                            "host-rw")}
    assert scores["isolated"] > scores["project"] > scores["host-ro"] > scores["host-rw"]
    reasons = " ".join(security_rating(facts("host-rw")).reasons)
    assert "plant images" in reasons


def test_speed_rating_counts_cache_and_host_images():
    by_name = {p.name: p for p in BUILTIN_PROFILES}
    iso = speed_rating(by_name["isolated"], facts("isolated"), None)
    ro = speed_rating(by_name["host-ro"], facts("host-ro"), 4.25)
    assert ro.score > iso.score
    assert "median build on this machine: 4.2s" in ro.reasons or \
        "median build on this machine: 4.3s" in ro.reasons
    assert "every base image pulled again" in iso.reasons


def test_a_socket_mount_and_a_privileged_container_are_seen():
    mounts = (MountFact("/run/podman/podman.sock", "/run/podman/podman.sock", False, "bind"),
              MountFact("/var/lib/containers/storage", "/x", False, "bind"))
    assert read_engine_sockets(mounts) == ("/run/podman/podman.sock",)
    assert read_host_store(mounts) == "read-write"
    data = json.loads((INSPECT / "host-ro.json").read_text())
    data["HostConfig"]["Privileged"] = True
    data["Mounts"].append({"Source": "/var/run/docker.sock", "Destination": "/d", "RW": True})
    f = facts_from_inspect(data)
    # /var/run is a symlink to /run: the fact names the socket's real path and where it shows.
    assert f.privileged and f.engine_sockets == ("/run/docker.sock as /d",)
    assert security_rating(f).score == 1
