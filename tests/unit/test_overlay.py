"""Which overlay a builder mounts: the planner's choice from the profile, the recorded kernel
overlay probe and a store's own record; the storage.conf and devices that follow from it; the
probe's record (current for one kernel and podman only); the card's fact, read from what the
container is given."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tui.engine import overlay
from tui.engine.config import Config
from tui.engine.facts import MountFact, overlay_fact, read_overlay
from tui.engine.overlay import Answer, ProbeRecord, answer_from, choose, ensure_probe
from tui.engine.planner import make_plan
from tui.engine.profiles import ProfileError, ProfileSet
from tui.engine.renderings import create_kwargs, kube_pod, podman_run_argv

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
YES = Answer(True, "overlay", "Buildah mounted the kernel's overlay")
NO = Answer(False, "fuse.fuse-overlayfs",
            "Buildah mounted fuse.fuse-overlayfs, not the kernel's overlay")


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(overlay, "kernel_release", lambda: "6.18.0-test")
    monkeypatch.setattr(overlay, "podman_binary", lambda: "/usr/bin/podman 1 2")
    return tmp_path / "data" / "buildcage"


def record(**answers: Answer) -> ProbeRecord:
    return ProbeRecord(kernel="6.18.0-test", podman_binary="/usr/bin/podman 1 2",
                       podman_version="4.3.1", answers=answers)


def plan(profile: str, probe: ProbeRecord | None | bool = True, **options: Any):
    return make_plan(HELLO, config=Config(), profile=profile, confirmed=True,
                     overlay_probe=probe, **options)


# -- the choice ---------------------------------------------------------------------------------
def test_auto_takes_the_kernel_overlay_only_where_the_probe_saw_it() -> None:
    both = record(userns=YES, host=YES)
    assert choose("auto", "auto:size=65536", both).kind == "kernel"
    assert choose("auto", "host", both).kind == "kernel"
    only_userns = record(userns=YES, host=NO)
    assert choose("auto", "auto", only_userns).kind == "kernel"
    refused = choose("auto", "host", only_userns)
    assert refused.kind == "fuse"
    assert refused.reason == ("the kernel's overlay failed its probe on kernel 6.18.0-test "
                              "(Buildah mounted fuse.fuse-overlayfs, not the kernel's overlay)")
    unprobed = choose("auto", "host", record(userns=YES))
    assert unprobed.kind == "fuse" and "is not probed" in unprobed.reason
    assert choose("auto", "auto", None).kind == "fuse"


def test_a_profile_may_insist_and_a_store_made_with_fuse_stays_on_it() -> None:
    assert choose("fuse", "auto", record(userns=YES)).kind == "fuse"
    assert choose("kernel", "host", None).kind == "kernel"
    kept = choose("auto", "host", record(host=YES), store="true")
    assert kept.kind == "fuse"
    assert kept.reason == ("this store was made with fuse-overlayfs and containers/storage "
                           "keeps mounting it so; remove the store for the kernel's overlay")
    assert choose("auto", "host", record(host=YES), store="false").kind == "kernel"


def test_the_planner_writes_what_it_chose_into_storage_conf_and_devices() -> None:
    yes = record(userns=YES, host=YES)
    for name in ("isolated", "project", "host-ro"):
        kernel = plan(name, yes)
        assert kernel.overlay == "kernel", name
        conf = tomllib.loads(kernel.storage_conf())["storage"]["options"]["overlay"]
        assert conf == {"mountopt": "nodev"}
        assert all(m.kind != "device" for m in kernel.mounts())
        assert create_kwargs(kernel)["devices"] == []
        assert not any(a.startswith("--device") for a in podman_run_argv(kernel))
        if name != "host-ro":  # host-ro has no Pod form (its host store overlays)
            assert "CharDevice" not in str(kube_pod(kernel))
        assert "SYS_ADMIN" not in str(create_kwargs(kernel))  # no capability is needed
        fuse = plan(name, None)
        assert fuse.overlay == "fuse" and "is not probed" in fuse.overlay_reason
        conf = tomllib.loads(fuse.storage_conf())["storage"]["options"]["overlay"]
        assert conf == {"mount_program": "/usr/bin/fuse-overlayfs",
                        "mountopt": "nodev,fsync=0"}
        assert [m.source for m in fuse.mounts() if m.kind == "device"] == ["/dev/fuse"]
    # The host's own store stays on fuse-overlayfs whatever the probe says.
    host_rw = plan("host-rw", yes)
    assert host_rw.overlay == "fuse" and "mount_program" in host_rw.storage_conf()
    assert host_rw.files()[host_rw.mount_record_path] == "true"


def test_the_planner_reads_the_recorded_probe_of_this_kernel_and_podman(data_home) -> None:
    overlay.write_record(_made(data_home), record(userns=YES, host=YES))
    assert plan("isolated").overlay == "kernel"
    stale = dataclasses.replace(record(userns=YES, host=YES), kernel="5.10.0-old")
    overlay.write_record(data_home, stale)
    assert plan("isolated").overlay == "fuse"
    other_podman = dataclasses.replace(record(userns=YES), podman_binary="/usr/bin/podman 9 9")
    overlay.write_record(data_home, other_podman)
    assert overlay.current_record(data_home) is None
    (data_home / overlay.PROBE_FILE).write_text("{not json")
    assert overlay.read_record(data_home) is None and plan("isolated").overlay == "fuse"


def test_a_project_store_made_with_fuse_keeps_it(data_home) -> None:
    made = plan("project", record(host=YES), project="old")
    assert made.store_dir is not None
    record_file = made.store_dir / "storage" / "overlay" / ".has-mount-program"
    record_file.parent.mkdir(parents=True)
    record_file.write_text("true")
    kept = plan("project", record(host=YES), project="old")
    assert kept.overlay == "fuse" and "remove the store" in kept.overlay_reason
    record_file.write_text("false")
    assert plan("project", record(host=YES), project="old").overlay == "kernel"
    assert plan("project", record(host=YES), project="new").overlay == "kernel"


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- profiles -----------------------------------------------------------------------------------
def test_built_in_profiles_and_user_profiles_choose_their_overlay() -> None:
    profiles = ProfileSet.from_config({
        "plain": {},
        "fuse": {"base": "isolated", "overlay": "fuse"},
        "older": {"base": "isolated", "mount_program": ""},
        "mine": {"base": "host-rw", "store": "host"},
        "shared": {"store": "host", "requires_confirmation": True},
    })
    got = {p.name: p.overlay for p in profiles.profiles}
    assert got == {"host-ro": "auto", "isolated": "auto", "project": "auto", "host-rw": "fuse",
                   "plain": "auto", "fuse": "fuse", "older": "kernel", "mine": "fuse",
                   "shared": "fuse"}
    assert profiles.get("older").mount_program == "/usr/bin/fuse-overlayfs"
    assert not profiles.get("plain").requires_confirmation  # no capability is added


@pytest.mark.parametrize(("table", "message"), [
    ({"overlay": "fast"}, 'profiles.x.overlay must be "auto", "kernel" or "fuse", got "fast"'),
    ({"overlay": True}, 'profiles.x.overlay must be "auto", "kernel" or "fuse", got true'),
    ({"store": "host", "overlay": "auto"},
     'profiles.x.overlay = "auto" is refused with store = "host"'),
    ({"base": "host-rw", "overlay": "kernel"},
     'profiles.x.overlay = "kernel" is refused with store = "host"'),
    ({"store": "host", "mount_program": ""},
     'profiles.x.overlay = "kernel" is refused with store = "host"'),
    ({"overlay": "fuse", "mount_program": ""},
     'profiles.x: mount_program = "" means the kernel\'s overlay, but overlay is "fuse"'),
])
def test_bad_overlay_settings_are_refused(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError) as info:
        ProfileSet.from_config({"x": table})
    assert str(info.value).startswith(f"config: {message}"), str(info.value)


# -- the probe's answer and record ---------------------------------------------------------------
def test_the_probe_answer_is_the_type_of_the_mounted_root() -> None:
    assert answer_from(0, "fstype=overlay\n") == YES
    assert answer_from(0, "fstype=fuse.fuse-overlayfs\n") == NO
    failed = answer_from(125, "Error: mounting: invalid argument\n")
    assert not failed.ok and failed.detail == \
        "the probe exited 125: Error: mounting: invalid argument"
    assert not answer_from(0, "").ok
    # Only a line of its own counts: a stray "fstype=overlay" inside other text does not.
    assert not answer_from(1, "echo fstype=overlay failed\n").ok


class FakeContainer:
    def __init__(self, output: bytes, fail: bool) -> None:
        self.output, self.fail, self.removed = output, fail, False

    def start(self) -> None:
        if self.fail:
            raise RuntimeError("no such image")

    def wait(self, **_: object) -> int:
        return 0

    def logs(self, **_: Any) -> list[bytes]:
        return [self.output]

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeClient:
    """Just what the probe asks of podman; each created container prints ``output``."""

    def __init__(self, output: bytes = b"fstype=overlay\n", fail: bool = False) -> None:
        self.created: list[dict[str, Any]] = []
        self.containers = self
        self.volumes = self
        self.output, self.fail = output, fail
        self.made: list[FakeContainer] = []
        self.volume_names: list[str] = []

    def create(self, name: str | None = None, labels: dict | None = None, **kwargs: Any):
        if "image" not in kwargs:  # volumes.create(name, labels=...)
            self.volume_names.append(str(name))
            return None
        self.created.append({"name": name, "labels": labels, **kwargs})
        container = FakeContainer(self.output, self.fail)
        self.made.append(container)
        return container

    def get(self, name: str) -> FakeClient:
        return self

    def remove(self, force: bool = False) -> None:
        self.volume_names.pop()

    def version(self) -> dict[str, str]:
        return {"Version": "4.3.1"}

    kernel = "6.1.0-remote"

    def info(self) -> dict[str, Any]:
        return {"host": {"kernel": self.kernel}}


def test_the_probe_runs_a_builder_of_each_kind_and_records_once(data_home) -> None:
    client = FakeClient()
    made = ensure_probe(client, "builder:1", _made(data_home))  # type: ignore[arg-type]
    assert made is not None and made.allows("userns") and made.allows("host")
    assert made.kernel == "6.18.0-test" and made.podman_version == "4.3.1"
    first, second = client.created
    assert first["idmappings"]["AutoUserNs"] and "idmappings" not in second
    for kwargs in client.created:
        assert kwargs["network_mode"] == "none" and "cap_add" not in kwargs
        assert "buildcage.owner" in kwargs["labels"]  # an orphan if the process dies
        assert "mounts" not in kwargs  # nothing of this machine: it runs on a remote host too
        script = kwargs["command"][-1]
        assert script.startswith("cat > /etc/containers/storage.conf <<'EOF'\n")
        conf = script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
        assert tomllib.loads(conf)["storage"]["options"]["overlay"] == {"mountopt": "nodev"}
    assert all(c.removed for c in client.made) and client.volume_names == []
    assert overlay.current_record(data_home) == made
    again = FakeClient()
    assert ensure_probe(again, "builder:1", data_home) == made  # type: ignore[arg-type]
    assert again.created == []


def test_a_probe_that_could_not_run_records_nothing(data_home) -> None:
    client = FakeClient(fail=True)
    assert ensure_probe(client, "builder:1", _made(data_home)) is None  # type: ignore[arg-type]
    assert overlay.read_record(data_home) is None
    assert all(c.removed for c in client.made)
    said_no = FakeClient(output=b"fstype=fuse.fuse-overlayfs\n")
    got = ensure_probe(said_no, "builder:1", data_home, ("userns",))  # type: ignore[arg-type]
    assert got is not None and got.answers == {"userns": NO}


# -- the card's fact ----------------------------------------------------------------------------
def test_the_card_reads_the_overlay_from_what_the_container_is_given(tmp_path: Path) -> None:
    fuse_conf = tmp_path / "fuse.conf"
    fuse_conf.write_text('[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n')
    kernel_conf = tmp_path / "kernel.conf"
    kernel_conf.write_text('[storage.options.overlay]\nmountopt = "nodev"\n')
    store = tmp_path / "store"
    (store / "storage" / "overlay").mkdir(parents=True)

    def mounts(conf: Path) -> tuple[MountFact, ...]:
        return (MountFact(str(store), "/var/lib/containers", False, "bind"),
                MountFact(str(conf), "/etc/containers/storage.conf", True, "bind"))

    assert read_overlay(mounts(fuse_conf)) == "fuse-overlayfs (/usr/bin/fuse-overlayfs)"
    assert read_overlay(mounts(kernel_conf)) == "kernel overlay"
    (store / "storage" / "overlay" / ".has-mount-program").write_text("true")
    assert read_overlay(mounts(kernel_conf)) == \
        "fuse-overlayfs (the store was made with it: containers/storage keeps it)"
    # The record a host-rw builder gets is a file of its own, mounted over the store's.
    own = tmp_path / "record"
    own.write_text("false")
    over = (*mounts(kernel_conf),
            MountFact(str(own), "/var/lib/containers/storage/overlay/.has-mount-program",
                      False, "bind"))
    assert read_overlay(over) == "kernel overlay"
    assert read_overlay(()) == "unknown: the builder's storage.conf cannot be read here"
    assert overlay_fact("[storage") == "unknown: the builder's storage.conf does not parse"


# -- the build's own fact -----------------------------------------------------------------------
def test_the_publish_phase_records_the_overlay_the_store_was_mounted_with(tmp_path) -> None:
    from tui.cli_output import HumanPrinter
    from tui.engine.events import ImageInfo
    from tui.engine.image_facts import read_facts

    built = plan("isolated", record(userns=YES))
    script = built.publish_command()[-1]
    assert ("cat /var/lib/containers/storage/overlay/.has-mount-program > "
            "/buildcage/facts/overlay 2>/dev/null || true") in script
    assert "overlay/.has-mount-program" not in built.build_command()[-1]  # never the RUN's
    built.facts_dir.mkdir(parents=True)
    assert read_facts(built).overlay == ""
    for written, read in (("false\n", "kernel"), ("true", "fuse"), ("maybe", "")):
        (built.facts_dir / "overlay").write_text(written)
        assert read_facts(built).overlay == read
    line = HumanPrinter(quiet=False).render(ImageInfo(layers=(1, 2), overlay="kernel"))
    assert line == "==> image: 2 layers, 3 bytes, the kernel's overlay"
    assert ImageInfo(layers=(1,), overlay="fuse").to_dict()["overlay"] == "fuse"


# -- a podman service on another host -----------------------------------------------------------
REMOTE = "ssh://root@build-host:22/run/podman/podman.sock"


def test_a_remote_service_has_its_own_record_checked_by_asking_it(data_home) -> None:
    client = FakeClient()
    made = ensure_probe(client, "builder:1", _made(data_home), ("userns",),  # type: ignore[arg-type]
                        service=REMOTE)
    assert made is not None and made.service == REMOTE and made.kernel == "6.1.0-remote"
    assert made.podman_binary == ""  # this machine's podman says nothing about that host's
    assert overlay.current_record(data_home) is None  # the local record is another one
    assert overlay.current_record(data_home, REMOTE) == made
    again = FakeClient()
    assert ensure_probe(again, "builder:1", data_home, ("userns",),  # type: ignore[arg-type]
                        service=REMOTE) == made
    assert again.created == []
    upgraded = FakeClient()
    upgraded.kernel = "6.12.0-remote"
    newer = ensure_probe(upgraded, "builder:1", data_home, ("userns",),  # type: ignore[arg-type]
                         service=REMOTE)
    assert len(upgraded.created) == 1 and newer is not None and newer.kernel == "6.12.0-remote"


def test_remote_plans_choose_by_that_service_and_keep_fuse_for_its_volumes(data_home) -> None:
    yes = dataclasses.replace(record(userns=YES, host=YES), service=REMOTE)
    overlay.write_record(_made(data_home), yes)
    config = Config(podman_url=REMOTE)
    isolated = make_plan(HELLO, config=config, profile="isolated", confirmed=True, remote=True)
    assert isolated.overlay == "kernel"
    project = make_plan(HELLO, config=config, profile="project", confirmed=True, remote=True)
    assert project.overlay == "fuse" and "volume on the podman host" in project.overlay_reason
    assert [m.source for m in project.mounts() if m.kind == "device"] == ["/dev/fuse"]
    # The local service knows nothing of it.
    assert plan("isolated").overlay == "fuse"


def test_the_first_probe_makes_the_data_directory_private(tmp_path) -> None:
    data = tmp_path / "fresh" / "buildcage"
    made = ensure_probe(FakeClient(), "builder:1", data, ("host",))  # type: ignore[arg-type]
    assert made is not None and (data / overlay.PROBE_FILE).is_file()
    assert data.stat().st_mode & 0o777 == 0o700
