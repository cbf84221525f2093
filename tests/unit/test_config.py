"""Tests for the TOML user configuration and XDG paths."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tui.engine.config import (
    Config,
    ConfigError,
    RegistryConfig,
    config_path,
    data_dir,
    load_config,
    registries_conf,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may see the developer's real config or environment overrides."""
    for name in ("BUILDCAGE_CONFIG", "BUILDCAGE_PODMAN_URL", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_xdg_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert config_path() == home / ".config/buildcage/config.toml"
    assert data_dir() == home / ".local/share/buildcage"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config_path() == tmp_path / "cfg/buildcage/config.toml"
    assert data_dir() == tmp_path / "data/buildcage"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert data_dir() == home / ".local/share/buildcage"
    monkeypatch.setenv("BUILDCAGE_CONFIG", str(tmp_path / "other.toml"))
    assert config_path() == tmp_path / "other.toml"


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "absent.toml")
    assert config == Config()
    assert config.default_profile == "host-ro"
    assert config.builder_image == "localhost/buildcage/builder:latest"
    assert config.podman_url == "unix:///run/podman/podman.sock"
    assert config.registries == {"127.0.0.1:5000": RegistryConfig("127.0.0.1:5000", False)}
    assert config.profiles == {}
    assert load_config() == Config()  # default XDG path under the empty fake HOME


def test_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        """
default_profile = "offline"
builder_image = "localhost/mybuilder:1"
podman_url = "unix:///tmp/podman.sock"

[registries."registry.lan:5000"]
tls_verify = false

[registries."127.0.0.1:5000"]
tls_verify = true

[profiles.offline]
base = "isolated"
summary = "no cache"
cap_drop = ["NET_RAW"]
""",
    )
    config = load_config(path)
    assert config.default_profile == "offline"
    assert config.builder_image == "localhost/mybuilder:1"
    assert config.podman_url == "unix:///tmp/podman.sock"
    assert config.profiles == {
        "offline": {"base": "isolated", "summary": "no cache", "cap_drop": ["NET_RAW"]}
    }
    assert config.tls_verify_for("registry.lan:5000") is False
    assert config.tls_verify_for("127.0.0.1:5000") is True  # file overrides the built-in
    assert config.tls_verify_for("quay.io") is True  # unknown registries verify TLS


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "env.toml", 'default_profile = "from-env"\npodman_url = "unix:///a"\n')
    monkeypatch.setenv("BUILDCAGE_CONFIG", str(path))
    monkeypatch.setenv("BUILDCAGE_PODMAN_URL", "unix:///b")
    config = load_config()
    assert config.default_profile == "from-env"
    assert config.podman_url == "unix:///b"


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", 'default_profile = "ok"\n\nbuilder_image = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "builder_image = = 3" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('defualt_profile = "x"\n', "unknown key(s) defualt_profile"),
        ("default_profile = 3\n", "default_profile must be a non-empty string"),
        ('[registries."reg.lan"]\ntls_verify = "no"\n', "tls_verify must be true or false"),
        ('[registries."reg.lan"]\nverify = false\n', "accepts only tls_verify"),
        ('[registries."bad host"]\ntls_verify = false\n', "is not a registry host"),
        ('registries = "x"\n', "registries must be tables"),
        ("profiles = { a = 1 }\n", "profiles.a must be a table"),
        ("[profiles.a]\nmemory = 2048\n", "profiles.a.memory is not a profile key"),
    ],
)
def test_invalid_contents(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=r"c\.toml") as info:
        load_config(path)
    assert fragment in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory


def test_registries_conf_lists_insecure_hosts_only() -> None:
    config = Config()
    config.registries["reg.lan:5000"] = RegistryConfig("reg.lan:5000", tls_verify=False)
    config.registries["quay.io"] = RegistryConfig("quay.io", tls_verify=True)
    text = registries_conf(config)
    parsed = tomllib.loads(text)
    assert parsed == {
        "registry": [
            {"location": "127.0.0.1:5000", "insecure": True},
            {"location": "reg.lan:5000", "insecure": True},
        ]
    }
    assert 'location = "127.0.0.1:5000"\ninsecure = true' in text


def test_registries_conf_with_no_insecure_hosts_is_valid_toml() -> None:
    config = Config(registries={"quay.io": RegistryConfig("quay.io")})
    assert tomllib.loads(registries_conf(config)) == {}
