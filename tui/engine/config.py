"""User configuration: ``config.toml`` under the XDG config dir, plus XDG data paths.

File layout (every key optional)::

    default_profile = "host-ro"
    builder_image = "localhost/buildcage/builder:latest"
    podman_url = "unix:///run/podman/podman.sock"
    cache_registry = "127.0.0.1:5000"   # registry layer cache of fresh stores; "" turns it off

    [registries."registry.example:5000"]
    tls_verify = false

    [profiles.NAME]      # checked key by key by tui.engine.profiles when the file is read
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.engine.errors import UserError
from tui.engine.profiles import ProfileError, ProfileSet
from tui.engine.registry import is_valid_host

APP = "buildcage"
LOCAL_REGISTRY = "127.0.0.1:5000"
DEFAULT_PROFILE = "host-ro"
DEFAULT_BUILDER_IMAGE = "localhost/buildcage/builder:latest"
DEFAULT_PODMAN_URL = "unix:///run/podman/podman.sock"

# A profile as read from ``[profiles.NAME]``; load_config checks it with the profiles module.
ProfileSpec = dict[str, Any]

_TOP_KEYS = {"default_profile", "builder_image", "podman_url", "podman_identity",
             "podman_known_hosts", "registries", "profiles", "cache_registry"}
_STRING_KEYS = ("default_profile", "builder_image", "podman_url", "podman_identity",
                "podman_known_hosts")


class ConfigError(UserError, ValueError):
    """The configuration file cannot be read or has wrong contents; the message names the file."""


def _xdg_dir(variable: str, fallback: str) -> Path:
    """XDG base dir: the spec says to ignore unset, empty or relative values."""
    value = os.environ.get(variable, "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / fallback
    return base / APP


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/buildcage`` (default ``~/.config/buildcage``)."""
    return _xdg_dir("XDG_CONFIG_HOME", ".config")


def data_dir() -> Path:
    """``$XDG_DATA_HOME/buildcage`` (default ``~/.local/share/buildcage``)."""
    return _xdg_dir("XDG_DATA_HOME", ".local/share")


def private_dir(path: Path) -> Path:
    """Creates ``path`` (and missing parents) and makes ``path`` itself 0700 whatever the umask,
    tightening it when it exists already more open: it holds build history, generated
    configuration and image stores that other users of the machine have no business reading."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """Creates ``path`` (empty) 0600 if it is missing, and tightens it to 0600 if it exists."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def ensure_data_dir() -> Path:
    """``data_dir()``, created 0700 (and tightened if it is more open)."""
    return private_dir(data_dir())


def config_path() -> Path:
    """The file to read: ``$BUILDCAGE_CONFIG`` if set, else ``config_dir()/config.toml``."""
    override = os.environ.get("BUILDCAGE_CONFIG", "")
    return Path(override).expanduser() if override else config_dir() / "config.toml"


@dataclass(frozen=True)
class RegistryConfig:
    """How to talk to one registry host (``host[:port]``)."""

    host: str
    tls_verify: bool = True


def _default_registries() -> dict[str, RegistryConfig]:
    # The local registry buildcage provisions is plain HTTP on loopback.
    return {LOCAL_REGISTRY: RegistryConfig(LOCAL_REGISTRY, tls_verify=False)}


@dataclass
class Config:
    """Effective configuration: built-in defaults, then the file, then environment overrides."""

    registries: dict[str, RegistryConfig] = field(default_factory=_default_registries)
    profiles: dict[str, ProfileSpec] = field(default_factory=dict)
    default_profile: str = DEFAULT_PROFILE
    builder_image: str = DEFAULT_BUILDER_IMAGE
    podman_url: str = DEFAULT_PODMAN_URL
    podman_identity: str = ""
    """ssh private key for an ``ssh://`` podman_url ("" : ssh's own choice)."""
    podman_known_hosts: str = ""
    """known_hosts file for an ``ssh://`` podman_url ("" : ssh's own, ~/.ssh/known_hosts)."""
    cache_registry: str | None = None
    """Registry (``host[:port]``) holding the layer cache of profiles with ``registry_cache``
    (``buildcage-cache/PROJECT``); "" turns the cache off; None (not in the file): the push
    target's registry when it is one of ``registries``, else the local registry when it is."""

    def tls_verify_for(self, registry_host: str) -> bool:
        """Whether TLS must be verified for ``registry_host``; unknown registries: True."""
        entry = self.registries.get(registry_host)
        return True if entry is None else entry.tls_verify


def _toml_error(path: Path, text: str, error: tomllib.TOMLDecodeError) -> ConfigError:
    """Quote the offending line: tomllib (3.11) only puts its number in the message."""
    message = f"{path}: invalid TOML: {error}"
    match = re.search(r"at line (\d+)", str(error))
    lines = text.splitlines()
    if match and 0 < int(match.group(1)) <= len(lines):
        message += f"\n  line {match.group(1)}: {lines[int(match.group(1)) - 1].strip()}"
    return ConfigError(message)


def _apply(config: Config, data: dict[str, Any], path: Path) -> None:
    """Validate the parsed TOML and fold it into ``config``."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOP_KEYS))})"
        )
    for key in _STRING_KEYS:
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise ConfigError(f"{path}: {key} must be a non-empty string")
            setattr(config, key, data[key])
    if "cache_registry" in data:
        cache = data["cache_registry"]
        if not isinstance(cache, str) or (cache and not is_valid_host(cache)):
            raise ConfigError(f'{path}: cache_registry must be a registry "host[:port]", or "" '
                              f"to turn the registry layer cache off, got {cache!r}")
        config.cache_registry = cache
    registries = data.get("registries", {})
    if not isinstance(registries, dict):
        raise ConfigError(f'{path}: registries must be tables like [registries."host:port"]')
    for host, table in registries.items():
        if not is_valid_host(host):
            raise ConfigError(f"{path}: registries.{host!r} is not a registry host[:port]")
        if not isinstance(table, dict) or set(table) - {"tls_verify"}:
            raise ConfigError(f"{path}: registries.{host!r} accepts only tls_verify")
        verify = table.get("tls_verify", True)
        if not isinstance(verify, bool):
            raise ConfigError(f"{path}: registries.{host!r}.tls_verify must be true or false")
        config.registries[host] = RegistryConfig(host, verify)
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: profiles must be tables like [profiles.NAME]")
    for name, spec in profiles.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: profiles.{name} must be a table")
        config.profiles[name] = dict(spec)
    try:  # every key of every profile, and what it would expose, checked now
        ProfileSet.from_config(config.profiles, source=str(path))
    except ProfileError as exc:
        raise ConfigError(str(exc)) from exc


def load_config(path: Path | None = None) -> Config:
    """Load ``path`` (default ``config_path()``); a missing file gives the defaults.

    ``BUILDCAGE_PODMAN_URL`` overrides ``podman_url`` whatever the file says.
    """
    path = path if path is not None else config_path()
    config = Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no file (HOME=/dev/null: no directory)
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if text is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(path, text, exc) from exc
        _apply(config, data, path)
    podman_url = os.environ.get("BUILDCAGE_PODMAN_URL", "")
    if podman_url:
        config.podman_url = podman_url
    identity = os.environ.get("BUILDCAGE_PODMAN_IDENTITY", "")
    if identity:
        config.podman_identity = identity
    return config


def registries_conf(config: Config) -> str:
    """Render a containers-registries.conf (v2) drop-in marking non-TLS-verified hosts insecure.

    It is mounted into the builder so Buildah's pulls and pushes honour ``tls_verify = false``.
    """
    parts = ["# Generated by buildcage from its config; do not edit.\n"]
    for host in sorted(config.registries):
        if not config.registries[host].tls_verify:
            # JSON string escapes are valid TOML basic-string escapes.
            parts.append(f"\n[[registry]]\nlocation = {json.dumps(host)}\ninsecure = true\n")
    return "".join(parts)
