"""User profiles from ``[profiles.NAME]`` are checked key by key: every wrong type or value is
refused with the file, the profile and the key named, and every dangerous setting is refused or
must be confirmed (issue 7, item 6)."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import pytest

from tui.engine.config import Config, ConfigError, load_config
from tui.engine.plan import BuildPlan
from tui.engine.planner import PlanError, make_plan
from tui.engine.profiles import BUILTIN_PROFILES, ProfileError, ProfileSet

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BUILDCAGE_CONFIG", "BUILDCAGE_PODMAN_URL", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def load(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def refused(tmp_path: Path, body: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# -- wrong types and values: the exact message, naming file, profile and key --------------------

BAD_VALUES = [
    ('cap_add = "SYS_ADMIN"',
     'profiles.fast.cap_add must be a list of capability names, got "SYS_ADMIN"'),
    ('cap_add = ["SYS_AMDIN"]',
     'profiles.fast.cap_add: "SYS_AMDIN" is not a Linux capability'),
    ("cap_add = [1]", "profiles.fast.cap_add must be a list of capability names, got [1]"),
    ('cap_drop = "KILL"',
     'profiles.fast.cap_drop must be a list of capability names, got "KILL"'),
    ('host_store_ro = "no"', 'profiles.fast.host_store_ro must be true or false, got "no"'),
    ("host_store_ro = 0", "profiles.fast.host_store_ro must be true or false, got 0"),
    ('requires_confirmation = "yes"',
     'profiles.fast.requires_confirmation must be true or false, got "yes"'),
    ('store = "tmp"', 'profiles.fast.store must be "fresh", "project" or "host", got "tmp"'),
    ("store = 1", 'profiles.fast.store must be "fresh", "project" or "host", got 1'),
    ("userns = 5",
     'profiles.fast.userns must be "host", "auto" or "auto:size=N" (N from 1 to 4294967295), '
     "got 5"),
    ('userns = "keep-id"',
     'profiles.fast.userns must be "host", "auto" or "auto:size=N" (N from 1 to 4294967295), '
     'got "keep-id"'),
    ('userns = "auto:size=0"',
     'profiles.fast.userns must be "host", "auto" or "auto:size=N" (N from 1 to 4294967295), '
     'got "auto:size=0"'),
    ('userns = "ns:/proc/1/ns/user"',
     'profiles.fast.userns must be "host", "auto" or "auto:size=N" (N from 1 to 4294967295), '
     'got "ns:/proc/1/ns/user"'),
    ('selinux = "off"',
     'profiles.fast.selinux must be "default", "disable" or "project-level", got "off"'),
    ('mount_program = "fuse-overlayfs"',
     "profiles.fast.mount_program must be \"\" (the kernel's overlay) or an absolute path of "
     'letters, digits and . _ - + /, got "fuse-overlayfs"'),
    ('mount_program = "/usr/bin/x\\"\\n[storage]\\ngraphroot=\\"/"',
     "profiles.fast.mount_program must be \"\" (the kernel's overlay) or an absolute path of "
     'letters, digits and . _ - + /, got "/usr/bin/x\\"\\n[storage]\\ngraphroot=\\"/"'),
    ('mount_program = "/usr/../bin/sh"',
     "profiles.fast.mount_program must be \"\" (the kernel's overlay) or an absolute path of "
     'letters, digits and . _ - + /, got "/usr/../bin/sh"'),
    ("mount_program = false",
     "profiles.fast.mount_program must be \"\" (the kernel's overlay) or an absolute path of "
     "letters, digits and . _ - + /, got false"),
    ('summary = "fine\\u001b[2Jcleared"',
     "profiles.fast.summary must be one line of text without control characters "
     '(at most 200 characters), got "fine\\u001b[2Jcleared"'),
    ("summary = 3",
     "profiles.fast.summary must be one line of text without control characters "
     "(at most 200 characters), got 3"),
    ('extra_stores = "/srv/store"',
     'profiles.fast.extra_stores must be a list of absolute paths, got "/srv/store"'),
    ('extra_stores = ["srv/store"]',
     'profiles.fast.extra_stores: "srv/store" must be an absolute path of letters, digits and '
     ". _ - + @ / (no .. and no :)"),
    ('extra_stores = ["/srv/a:/etc"]',
     'profiles.fast.extra_stores: "/srv/a:/etc" must be an absolute path of letters, digits and '
     ". _ - + @ / (no .. and no :)"),
    ('extra_stores = ["/srv/../etc"]',
     'profiles.fast.extra_stores: "/srv/../etc" must be an absolute path of letters, digits and '
     ". _ - + @ / (no .. and no :)"),
    ('base = "nope"', 'profiles.fast.base must be one of the built-in profiles '
     '(host-ro, isolated, project, host-rw), got "nope"'),
    ("base = 1", "profiles.fast.base must be one of the built-in profiles "
     "(host-ro, isolated, project, host-rw), got 1"),
    ("network = \"none\"",
     "profiles.fast.network is not a profile key (known: base, cap_add, cap_drop, extra_stores, "
     "host_store_ro, mount_program, overlay, registry_cache, registry_cache_always, "
     "requires_confirmation, selinux, store, summary, userns)"),
    ("privileged = true",
     "profiles.fast.privileged is not supported: a privileged builder is root on the host "
     "with every device; buildcage never creates one"),
]


@pytest.mark.parametrize(("line", "message"), BAD_VALUES, ids=[b[0][:40] for b in BAD_VALUES])
def test_a_bad_value_is_refused_with_file_profile_and_key(tmp_path: Path, line: str,
                                                          message: str) -> None:
    text = refused(tmp_path, f"[profiles.fast]\n{line}\n")
    assert text == f"{tmp_path / 'config.toml'}: {message}"


def test_a_bad_profile_name_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, '[profiles."../../etc"]\nbase = "project"\n')
    assert text == (f"{tmp_path / 'config.toml'}: profiles.\"../../etc\": a profile name is "
                    "1 to 40 lower-case letters, digits, - and _, starting with a letter or digit")


def test_a_built_in_name_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, '[profiles.host-ro]\nstore = "fresh"\n')
    assert text.endswith("profiles.host-ro: host-ro is built in; give yours another name")


def test_good_values_are_normalized(tmp_path: Path) -> None:
    config = load(tmp_path, """
[profiles.fast]
base = "isolated"
cap_add = ["cap_sys_admin", "CAP_SYS_ADMIN", "CHOWN"]
cap_drop = ["ALL"]
userns = "auto"
mount_program = ""
extra_stores = ["/srv/team-store/"]
""")
    fast = ProfileSet.from_config(config.profiles).get("fast")
    assert fast.cap_add == ("CHOWN", "SYS_ADMIN")
    assert fast.cap_drop == ("ALL",)
    assert fast.userns == "auto"
    assert fast.extra_stores == ("/srv/team-store",)
    assert fast.overlay == "kernel"  # the older spelling of overlay = "kernel"
    assert fast.mount_program == "/usr/bin/fuse-overlayfs"
    assert fast.requires_confirmation  # SYS_ADMIN is beyond the default set
    sized = load(tmp_path, '[profiles.a]\nuserns = "auto:size=65536"\n')
    assert ProfileSet.from_config(sized.profiles).get("a").userns == "auto:size=65536"


def test_profile_set_without_a_file_names_the_config(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        ProfileSet.from_config({"fast": {"host_store_ro": "no"}})
    assert str(info.value) == 'config: profiles.fast.host_store_ro must be true or false, got "no"'


# -- dangerous settings: refused ----------------------------------------------------------------

REFUSED = [
    ('cap_add = ["ALL"]',
     "profiles.fast.cap_add: ALL is refused: every capability, including SYS_ADMIN, "
     "SYS_MODULE and SYS_RAWIO, is a way out of the container"),
    ('cap_add = ["SYS_ADMIN"]',
     "profiles.fast.cap_add: SYS_ADMIN is refused without a private user namespace "
     '(userns = "auto"): with it the builder\'s root, the host\'s root, reaches past the '
     "container into the host"),
    ('cap_add = ["CAP_SYS_MODULE"]',
     "profiles.fast.cap_add: SYS_MODULE is refused without a private user namespace "
     '(userns = "auto"): with it the builder\'s root, the host\'s root, reaches past the '
     "container into the host"),
    ('cap_add = ["NET_ADMIN"]',
     "profiles.fast.cap_add: NET_ADMIN is refused without a private user namespace "
     '(userns = "auto"): with it the builder\'s root, the host\'s root, reaches past the '
     "container into the host"),
    ('cap_add = ["DAC_READ_SEARCH"]',
     "profiles.fast.cap_add: DAC_READ_SEARCH is refused without a private user namespace "
     '(userns = "auto"): with it the builder\'s root, the host\'s root, reaches past the '
     "container into the host"),
    ('store = "host"\nrequires_confirmation = false',
     "profiles.fast.requires_confirmation cannot be false: this profile lets the build write "
     "into the host's image store (it can plant images the host will run)"),
    ('selinux = "disable"\nrequires_confirmation = false',
     "profiles.fast.requires_confirmation cannot be false: this profile turns SELinux "
     "separation off"),
    ('extra_stores = ["/"]',
     "profiles.fast.extra_stores: / is refused: it holds the engine socket "
     "/run/podman/podman.sock, and whoever reaches it controls the host's containers"),
    ('extra_stores = ["/run"]',
     "profiles.fast.extra_stores: /run is refused: it holds the engine socket "
     "/run/podman/podman.sock, and whoever reaches it controls the host's containers"),
    ('extra_stores = ["/var/run/docker.sock"]',
     "profiles.fast.extra_stores: /var/run/docker.sock is refused: it holds the engine socket "
     "/run/docker.sock, and whoever reaches it controls the host's containers"),
]


@pytest.mark.parametrize(("line", "message"), REFUSED, ids=[r[0][:40] for r in REFUSED])
def test_a_dangerous_setting_is_refused(tmp_path: Path, line: str, message: str) -> None:
    text = refused(tmp_path, f"[profiles.fast]\nbase = \"project\"\n{line}\n")
    assert text == f"{tmp_path / 'config.toml'}: {message}"


def test_base_host_rw_cannot_drop_its_confirmation(tmp_path: Path) -> None:
    text = refused(tmp_path, '[profiles.mine]\nbase = "host-rw"\nrequires_confirmation = false\n')
    assert "profiles.mine.requires_confirmation cannot be false" in text


def test_a_socket_found_inside_a_store_directory_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store" / "sub"
    store.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(store / "docker.sock"))
    try:
        text = refused(tmp_path, f'[profiles.fast]\nextra_stores = ["{tmp_path / "store"}"]\n')
    finally:
        server.close()
    assert text.endswith(f"profiles.fast.extra_stores: {tmp_path / 'store'} is refused: it holds "
                         f"the engine socket {store / 'docker.sock'}, and whoever reaches it "
                         "controls the host's containers")


def test_a_symlink_to_a_socket_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/run/podman")
    text = refused(tmp_path, f'[profiles.fast]\nextra_stores = ["{link}"]\n')
    assert "/run/podman/podman.sock" in text and "is refused" in text


# -- dangerous settings: must be confirmed ------------------------------------------------------

def risky(tmp_path: Path, body: str, name: str = "fast"):
    config = load(tmp_path, body)
    profile = ProfileSet.from_config(config.profiles).get(name)
    assert profile.requires_confirmation
    return config, profile


CONFIRMED = [
    ('base = "isolated"\ncap_add = ["SYS_ADMIN"]',
     "it adds capabilities beyond the builder's default set: SYS_ADMIN"),
    ('cap_add = ["NET_RAW", "SYS_NICE"]',
     "it adds capabilities beyond the builder's default set: NET_RAW, SYS_NICE"),
    ('base = "isolated"\ncap_add = ["NET_ADMIN"]',
     "it adds capabilities beyond the builder's default set: NET_ADMIN"),
    ('selinux = "disable"', "it turns SELinux separation off"),
    ('extra_stores = ["/var/lib/containers/storage"]',
     "its extra store /var/lib/containers/storage is the host's image store: "
     "it sees every host image"),
    ('extra_stores = ["/var/lib/containers"]',
     "its extra store /var/lib/containers contains the host's image store: "
     "it sees every host image"),
    ('extra_stores = ["/var/lib/containers/storage/overlay-images"]',
     "its extra store /var/lib/containers/storage/overlay-images is inside the host's image "
     "store: it sees every host image"),
    ('extra_stores = ["/etc"]', "its extra store /etc is the host directory /etc"),
    ('extra_stores = ["/home"]', "its extra store /home is the host directory /home"),
    ('extra_stores = ["/sys/fs"]', "its extra store /sys/fs is inside the host directory /sys"),
    ('extra_stores = ["/etc/ssh"]', "its extra store /etc/ssh is inside the host directory /etc"),
    ('extra_stores = ["/dev"]', "its extra store /dev is the host directory /dev"),
    ("requires_confirmation = true", "its configuration asks for confirmation"),
]


@pytest.mark.parametrize(("line", "risk"), CONFIRMED, ids=[c[0][:40] for c in CONFIRMED])
def test_a_dangerous_setting_must_be_confirmed(tmp_path: Path, line: str, risk: str) -> None:
    config, profile = risky(tmp_path, f"[profiles.fast]\n{line}\n")
    assert risk in [r.text for r in profile.risks()]
    with pytest.raises(PlanError) as info:
        make_plan(HELLO, config=config, profile="fast")
    assert str(info.value) == (
        f"profile 'fast' must be confirmed: {risk}; confirm it explicitly "
        "(CLI: --allow-unsafe-profile, TUI: answer the confirmation)")
    # The CLI flag for host-rw does not confirm other risks; the right one does.
    with pytest.raises(PlanError):
        make_plan(HELLO, config=config, profile="fast", confirmed=frozenset({"host-rw"}))
    plan = make_plan(HELLO, config=config, profile="fast", confirmed=frozenset({"unsafe"}))
    assert plan.profile.name == "fast"
    assert make_plan(HELLO, config=config, profile="fast", confirmed=True).profile is not None


def test_a_symlink_into_the_host_store_must_be_confirmed(tmp_path: Path) -> None:
    link = tmp_path / "team-store"
    link.symlink_to("/var/lib/containers/storage")
    _, profile = risky(tmp_path, f'[profiles.fast]\nextra_stores = ["{link}"]\n')
    assert [r.text for r in profile.risks()] == [
        f"its extra store {link} is the host's image store (through the symlink to "
        "/var/lib/containers/storage): it sees every host image"]


def test_host_rw_is_confirmed_by_its_own_flag() -> None:
    config = Config()
    with pytest.raises(PlanError) as info:
        make_plan(HELLO, config=config, profile="host-rw")
    assert str(info.value) == (
        "profile 'host-rw' must be confirmed: it lets the build write into the host's image "
        "store (it can plant images the host will run); it turns SELinux separation off; "
        "confirm it explicitly (CLI: --allow-host-rw, TUI: answer the confirmation)")
    with pytest.raises(PlanError):
        make_plan(HELLO, config=config, profile="host-rw", confirmed=frozenset({"unsafe"}))
    assert make_plan(HELLO, config=config, profile="host-rw",
                     confirmed=frozenset({"host-rw"})).profile.name == "host-rw"


def test_a_user_host_store_profile_with_caps_needs_both_flags(tmp_path: Path) -> None:
    config, _ = risky(tmp_path, '[profiles.fast]\nstore = "host"\ncap_add = ["NET_RAW"]\n')
    with pytest.raises(PlanError) as info:
        make_plan(HELLO, config=config, profile="fast")
    assert "(CLI: --allow-host-rw --allow-unsafe-profile," in str(info.value)
    with pytest.raises(PlanError) as info:
        make_plan(HELLO, config=config, profile="fast", confirmed=frozenset({"host-rw"}))
    assert str(info.value) == (
        "profile 'fast' must be confirmed: it adds capabilities beyond the builder's default "
        "set: NET_RAW; confirm it explicitly (CLI: --allow-unsafe-profile, TUI: answer the "
        "confirmation)")
    make_plan(HELLO, config=config, profile="fast",
              confirmed=frozenset({"host-rw", "unsafe"}))


def test_built_in_profiles_other_than_host_rw_need_no_confirmation() -> None:
    for profile in BUILTIN_PROFILES:
        assert bool(profile.risks()) == (profile.name == "host-rw")
        assert profile.requires_confirmation == (profile.name == "host-rw")


def test_example_config_loads_and_none_of_its_profiles_asks_for_confirmation() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "config.toml")
    profiles = ProfileSet.from_config(config.profiles)
    fuse = profiles.get("isolated-fuse")
    assert fuse.overlay == "fuse" and fuse.userns == "auto:size=65536"
    assert not fuse.requires_confirmation
    assert not profiles.get("team-cache").requires_confirmation
    assert profiles.get("team-cache").overlay == "auto"


# -- storage.conf: profile values are TOML-escaped ----------------------------------------------

def test_storage_conf_escapes_profile_values(tmp_path: Path) -> None:
    config = load(tmp_path, '[profiles.fast]\nmount_program = "/opt/fuse-overlayfs+1"\n'
                            'extra_stores = ["/srv/team@store"]\n')
    plan: BuildPlan = make_plan(HELLO, config=config, profile="fast")
    parsed = tomllib.loads(plan.storage_conf())
    assert parsed["storage"]["graphroot"] == "/var/lib/containers/storage"
    assert parsed["storage"]["options"]["overlay"]["mount_program"] == "/opt/fuse-overlayfs+1"
    assert parsed["storage"]["options"]["additionalimagestores"] == [
        "/var/lib/shared", "/var/lib/shared-1"]


def test_storage_conf_cannot_be_injected_even_by_a_profile_built_in_code() -> None:
    from dataclasses import replace

    evil = replace(BUILTIN_PROFILES[2], name="evil",
                   mount_program='/x"\n[storage]\ngraphroot = "/host"\n#')
    plan = make_plan(HELLO, config=Config(), profile="project", confirmed=True)
    plan = replace(plan, profile=evil)
    parsed = tomllib.loads(plan.storage_conf())
    assert parsed["storage"]["graphroot"] == "/var/lib/containers/storage"
    assert parsed["storage"]["options"]["overlay"]["mount_program"] == evil.mount_program


def test_no_profile_can_make_a_privileged_builder(tmp_path: Path) -> None:
    from tui.engine.renderings import create_kwargs, podman_run

    config = load(tmp_path, '[profiles.fast]\nbase = "isolated"\ncap_add = ["SYS_ADMIN"]\n'
                            'selinux = "disable"\n')
    for name in [p.name for p in BUILTIN_PROFILES] + ["fast"]:
        plan = make_plan(HELLO, config=config, profile=name, confirmed=True)
        assert "privileged" not in create_kwargs(plan)
        assert "--privileged" not in podman_run(plan)
