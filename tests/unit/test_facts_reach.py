"""Facts come from what is really mounted, not from path names: mount sources are resolved on
the host and looked into, so a mount of ``/``, of ``/run`` or of a symlink reaches the engine
sockets and the image store under it; the ratings take off for each (issue 7, item 6)."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tui.engine.facts import (
    MountFact,
    describe_network,
    facts_from_inspect,
    read_engine_sockets,
    read_host_store,
)
from tui.engine.profiles import LINUX_CAPS
from tui.engine.summary import security_rating

INSPECT = Path(__file__).resolve().parents[1] / "data" / "inspect"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((INSPECT / f"{name}.json").read_text())


def with_mount(attrs: dict[str, Any], source: str, target: str, rw: bool = False,
               kind: str = "bind") -> dict[str, Any]:
    attrs = copy.deepcopy(attrs)
    attrs["Mounts"].append({"Source": source, "Destination": target, "RW": rw, "Type": kind})
    return attrs


def ro(source: str, target: str = "/var/lib/shared-1") -> MountFact:
    return MountFact(source, target, True, "bind")


# -- engine sockets ----------------------------------------------------------------------------

def test_a_mount_of_the_root_reaches_the_podman_socket_under_it():
    found = read_engine_sockets((ro("/"),))
    assert "/run/podman/podman.sock as /var/lib/shared-1/run/podman/podman.sock" in found


def test_a_mount_of_run_reaches_the_podman_socket():
    assert "/run/podman/podman.sock as /x/podman/podman.sock" in read_engine_sockets(
        (ro("/run", "/x"),))


def test_var_run_is_resolved_to_run():
    assert read_engine_sockets((ro("/var/run/docker.sock", "/d"),)) == ("/run/docker.sock as /d",)


def test_a_symlink_to_the_socket_directory_is_followed(tmp_path: Path):
    link = tmp_path / "cache"
    link.symlink_to("/run/podman")
    assert read_engine_sockets((ro(str(link), "/c"),)) == (
        "/run/podman/podman.sock as /c/podman.sock",)


def test_a_socket_deep_inside_a_mounted_directory_is_found(tmp_path: Path):
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(deep / "buildkitd.sock"))
    try:
        found = read_engine_sockets((ro(str(tmp_path), "/m"),), socket_locations=())
    finally:
        server.close()
    assert found == (f"{deep / 'buildkitd.sock'} as /m/a/b/c/buildkitd.sock",)


def test_a_directly_mounted_socket_keeps_its_path():
    assert read_engine_sockets((ro("/run/podman/podman.sock", "/run/podman/podman.sock"),)) == (
        "/run/podman/podman.sock",)


def test_ordinary_directories_reach_no_socket(tmp_path: Path):
    (tmp_path / "podman.sock").write_text("a regular file named like a socket")
    assert read_engine_sockets((ro(str(tmp_path)), ro("/etc", "/e")), socket_locations=()) == ()


# -- the host's image store --------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> str:
    path = tmp_path / "lib" / "containers" / "storage"
    (path / "overlay-images").mkdir(parents=True)
    (path / "volumes" / "v" / "_data").mkdir(parents=True)
    return str(path)


def test_a_symlink_to_the_store_is_host_store_access(tmp_path: Path, store: str):
    link = tmp_path / "team-store"
    link.symlink_to(store)
    assert read_host_store((ro(str(link)),), store) == "read-only"


def test_a_parent_of_the_store_is_host_store_access(tmp_path: Path, store: str):
    assert read_host_store((ro(str(tmp_path / "lib")),), store) == "read-only"
    assert read_host_store((MountFact(str(tmp_path), "/t", False, "bind"),), store) == \
        "read-write"


def test_a_part_of_the_store_is_host_store_access(store: str):
    assert read_host_store((ro(store + "/overlay-images"),), store) == "read-only"


def test_a_volume_is_not_the_image_store(store: str):
    volume = MountFact(store + "/volumes/v/_data", "/var/lib/containers", False, "volume")
    assert read_host_store((volume,), store) == "none"


def test_unrelated_directories_are_not_the_store(tmp_path: Path, store: str):
    other = tmp_path / "other"
    other.mkdir()
    assert read_host_store((ro(str(other)),), store) == "none"


def test_facts_name_the_mounts_through_which_the_store_is_reached():
    f = facts_from_inspect(with_mount(recorded("project"), "/var/lib", "/var/lib/shared-1"))
    assert f.host_store == "read-only"
    assert f.host_store_via == ("/var/lib/shared-1",)
    # host-ro: the three overlays it was created with (no trace of them in a created
    # container's inspect, so the probe passes them on)
    overlays = [{"source": f"/var/lib/containers/storage/{part}",
                 "destination": f"/var/lib/shared/{part}", "options": []}
                for part in ("overlay", "overlay-images")]
    assert facts_from_inspect(recorded("host-ro"), overlay_volumes=overlays).host_store_via == (
        "/var/lib/shared/overlay", "/var/lib/shared/overlay-images")
    assert facts_from_inspect(recorded("host-ro")).host_store_via == ()


# -- the network -------------------------------------------------------------------------------

def test_the_network_is_read_from_inspect_and_described():
    data = recorded("isolated")
    assert facts_from_inspect(data).network == "none"  # the build phase's builder
    data["HostConfig"]["NetworkMode"] = "host"
    assert facts_from_inspect(data).network == "host"
    assert describe_network("host") == "host: RUN steps can reach services on the host's loopback"
    assert describe_network("none") == "none: no network at all"
    assert describe_network("slirp4netns").startswith("slirp4netns: its own namespace")


# -- ratings -----------------------------------------------------------------------------------

def rating(attrs: dict[str, Any]):
    return security_rating(facts_from_inspect(attrs))


def test_host_network_is_a_weakness():
    data = recorded("isolated")
    data["HostConfig"]["NetworkMode"] = "host"
    host = rating(data)
    assert "host network: RUN steps can reach services on the host's loopback" in host.reasons
    data["HostConfig"]["NetworkMode"] = "none"
    none = rating(data)
    assert none.score == host.score + 1
    assert "no network: RUN steps reach nothing" in none.reasons


def test_a_reachable_socket_rates_one_with_the_socket_named():
    result = rating(with_mount(recorded("isolated"), "/", "/var/lib/shared-1"))
    assert result.score == 1
    assert any(r.startswith("an engine socket is reachable: /run/podman/podman.sock as "
                            "/var/lib/shared-1/run/podman/podman.sock") for r in result.reasons)


def test_all_capabilities_rate_one():
    data = recorded("project")
    data["EffectiveCaps"] = sorted(f"CAP_{c}" for c in LINUX_CAPS)
    data["HostConfig"]["CapAdd"] = ["ALL"]
    result = rating(data)
    assert result.score == 1
    assert "CAP_SYS_ADMIN with root as the host's root: a way out of the container" in \
        result.reasons


def test_sys_admin_in_the_host_namespace_rates_one():
    data = recorded("project")
    data["EffectiveCaps"] = data["EffectiveCaps"] + ["CAP_SYS_ADMIN"]
    assert rating(data).score == 1


def test_each_extra_capability_takes_one_off():
    data = recorded("isolated")
    data["HostConfig"]["NetworkMode"] = "none"
    base = rating(data).score
    assert base == 5
    data["EffectiveCaps"] = data["EffectiveCaps"] + ["CAP_SYS_ADMIN"]
    one = rating(data)
    assert one.score == 4
    assert "CAP_SYS_ADMIN beyond the default set (inside its own user namespace)" in one.reasons
    data["EffectiveCaps"] = data["EffectiveCaps"] + ["CAP_NET_RAW"]
    assert rating(data).score == 3


def test_host_store_through_an_extra_mount_is_rated(tmp_path: Path):
    link = tmp_path / "cache"
    link.symlink_to("/var/lib/containers/storage")
    data = recorded("isolated")
    data["HostConfig"]["NetworkMode"] = "none"
    result = rating(with_mount(data, str(link), "/var/lib/shared-1"))
    assert result.score == 4
    assert ("reads the host's image store (read-only, through /var/lib/shared-1): "
            "it sees every host image") in result.reasons


def test_a_socket_bound_right_now_is_known_wherever_it_is(tmp_path: Path):
    from tui.engine.hostpaths import engine_socket_locations, listening_engine_sockets

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "docker.sock"))
    server.listen(1)
    try:
        assert str(tmp_path / "docker.sock") in listening_engine_sockets()
        assert str(tmp_path / "docker.sock") in engine_socket_locations()
    finally:
        server.close()
