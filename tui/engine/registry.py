"""Image references (distribution reference grammar), push targets, and registry reachability."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}")
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
_MAX_NAME = 255
_LOOPBACK = ("127.", "localhost", "[::1]")


class BadReference(ValueError):
    """An image reference or push target the user typed is not valid; the message says why."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; ``tag`` is "" only when a digest was given without a tag."""

    registry: str
    repository: str
    tag: str
    digest: str

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class OciTarget:
    """An OCI image layout directory to push into (``oci:/abs/path[:tag]``)."""

    path: str
    tag: str

    def __str__(self) -> str:
        return f"oci:{self.path}:{self.tag}"


def is_valid_host(host: str) -> bool:
    """Whether ``host`` is a registry host, optionally with a port (``reg.example:5000``)."""
    return bool(_HOST_RE.fullmatch(host))


def _check_tag(tag: str) -> None:
    if not tag:
        raise BadReference("tag is empty after ':'")
    if not _TAG_RE.fullmatch(tag):
        raise BadReference(
            f"tag {tag!r} has invalid characters (allowed: A-Z a-z 0-9 _ . -, at most 128,"
            " not starting with . or -)"
        )


def _split_tag(name: str) -> tuple[str, str | None]:
    """Split ``name[:tag]``; a ':' before the last '/' belongs to a host port, not a tag."""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, None


def parse_reference(text: str) -> ImageRef:
    """Parse ``[host[:port]/]path[:tag][@digest]``; raise ``BadReference`` saying what is wrong."""
    text = text.strip()
    if not text:
        raise BadReference("empty reference")
    name, _, digest = text.partition("@")
    if "@" in text and not _DIGEST_RE.fullmatch(digest):
        raise BadReference(f"digest {digest!r} is invalid (expected ALGORITHM:HEX)")
    if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
        raise BadReference(f"digest {digest!r} is invalid (sha256 needs 64 lowercase hex digits)")
    name, tag = _split_tag(name)
    if tag is not None:
        _check_tag(tag)
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
        if not is_valid_host(registry):
            raise BadReference(f"registry host {registry!r} is invalid")
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if not repository:
        raise BadReference(f"reference {text!r} has no repository name")
    if repository != repository.lower():
        raise BadReference(f"repository name must be lowercase: {repository!r}")
    for component in repository.split("/"):
        if not component:
            raise BadReference(f"repository {repository!r} has an empty path component")
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise BadReference(
                f"repository component {component!r} is invalid (allowed: a-z 0-9, joined by"
                " single '.', '_', '__' or dashes; must start and end with a letter or digit)"
            )
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise BadReference(f"name is longer than {_MAX_NAME} characters")
    if tag is None:
        # A digest alone pins the image; inventing "latest" beside it would be misleading.
        tag = "" if digest else DEFAULT_TAG
    return ImageRef(registry, repository, tag, digest)


def parse_push_target(text: str) -> ImageRef | OciTarget | None:
    """Parse where to push: ``""``/``"none"`` -> None, ``oci:/abs/path[:tag]``, or a reference."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return None
    if text.startswith("oci:"):
        spec = text[len("oci:") :]
        path, tag = _split_tag(spec)
        if not path.startswith("/"):
            raise BadReference(f"oci target path must be absolute: {path!r}")
        if tag is not None:
            _check_tag(tag)
        return OciTarget(path.rstrip("/") or "/", tag or DEFAULT_TAG)
    return parse_reference(text)


OCI_MARKER = ".buildcage-oci"
"""Written by buildcage into every ``oci:`` directory it creates or fills."""

_OCI_TREES = {
    "/etc": "the host's configuration",
    "/usr": "the host's programs", "/bin": "the host's programs", "/sbin": "the host's programs",
    "/lib": "the host's libraries", "/lib32": "the host's libraries",
    "/lib64": "the host's libraries", "/libx32": "the host's libraries",
    "/boot": "the host's boot files",
    "/dev": "devices", "/proc": "kernel interfaces", "/sys": "kernel interfaces",
    "/run": "runtime state", "/var/run": "runtime state",
    "/var/lib/containers": "the host's image store",
}
"""An ``oci:`` target may not be in these trees at all."""

_OCI_SHARED = ("/", "/root", "/home", "/var", "/var/lib", "/var/tmp", "/tmp", "/srv", "/opt",
               "/mnt", "/media")
"""... nor be one of these directories itself (they hold other things; below them is fine)."""


def is_oci_layout(directory: Path) -> bool:
    """Whether ``directory`` holds an OCI image layout (its ``oci-layout`` file names a version)."""
    try:
        layout = json.loads((directory / "oci-layout").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(layout, dict) and "imageLayoutVersion" in layout


def check_oci_dir(path: str, *, home: Path, data_dir: Path) -> str:
    """The directory an ``oci:`` push may write, with symlinks resolved; raises BadReference.

    Refused: system trees, shared directories themselves (``/``, ``/tmp``, the user's home...),
    buildcage's data directory, and an existing directory holding anything but an OCI layout or
    an earlier buildcage push (an unrelated ``index.json`` would be overwritten). A directory
    that does not exist yet is fine: it is created, marked, and the image written into it.
    """
    if not path.startswith("/"):
        raise BadReference(f"oci target path must be absolute: {path!r}")
    resolved = Path(path).resolve()  # the checks apply to where the path really leads
    shown = repr(path) if str(resolved) == path else f"{path!r} (resolves to {resolved})"
    example = f"oci:{home}/oci/NAME"
    trees = {Path(t): why for t, why in _OCI_TREES.items()}
    trees[data_dir.resolve()] = "buildcage's own data"
    for tree, why in trees.items():
        if resolved == tree or tree in resolved.parents:
            raise BadReference(f"oci target {shown} is inside {tree} ({why}); "
                               f"name a directory of your own, e.g. {example}")
    if resolved in {Path(s) for s in _OCI_SHARED} | {home.resolve()}:
        raise BadReference(f"oci target {shown} is the shared directory {resolved} itself; "
                           f"name a directory of the image's own, e.g. {example}")
    check_oci_contents(resolved, shown)
    return str(resolved)


def check_oci_contents(directory: Path, shown: str = "") -> None:
    """An existing ``oci:`` directory must be empty, an OCI layout, or marked as buildcage's."""
    shown = shown or repr(str(directory))
    if not os.path.lexists(directory):
        return
    if not directory.is_dir():
        raise BadReference(f"oci target {shown} exists and is not a directory")
    entries = sorted(os.listdir(directory))
    if not entries or OCI_MARKER in entries or is_oci_layout(directory):
        return
    listing = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise BadReference(
        f"oci target {shown} already holds files that are not an OCI layout ({listing}); "
        "buildcage writes only into a new or empty directory, an OCI layout (with an oci-layout "
        f"file) or a directory it wrote before (marked {OCI_MARKER})"
    )


def _describe(exc: BaseException, timeout: float) -> str:
    """Turn a urllib/socket failure into a short human phrase."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, socket.gaierror):
        return "unknown host name"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS handshake failed ({reason.reason or reason})"
    return str(reason) or type(reason).__name__


def _probe(url: str, registry: str, context: ssl.SSLContext | None, timeout: float) -> int:
    """Return the HTTP status of GET ``url``; HTTP errors are statuses, not exceptions."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context)]
    if registry.startswith(_LOOPBACK):
        # A proxy from the environment cannot reach our loopback; talk to it directly.
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "buildcage"})
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def check_reachable(registry: str, tls_verify: bool, timeout: float = 2.0) -> tuple[bool, str]:
    """GET ``/v2/`` on ``registry``; 200 or 401 means a registry answered. Never raises.

    With ``tls_verify`` only verified HTTPS counts. Without it, plain HTTP is tried first (the
    local registry buildcage provisions speaks HTTP), then HTTPS without verification, as
    containers' ``insecure = true`` does.
    """
    if tls_verify:
        attempts = [("https", ssl.create_default_context())]
    else:
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        attempts = [("http", None), ("https", unverified)]
    error = ""
    for scheme, context in attempts:
        try:
            status = _probe(f"{scheme}://{registry}/v2/", registry, context, timeout)
        except Exception as exc:  # noqa: BLE001 - a reachability check reports, it never raises
            error = _describe(exc, timeout)
            if error == "connection refused" or error.startswith("no answer"):
                break  # the other scheme would hit the same closed or silent port
            continue
        if status == 200:
            return True, f"{registry} answered (registry API v2)"
        if status == 401:
            return True, f"{registry} answered (registry API v2, login required)"
        return False, f"{registry} answered HTTP {status} on /v2/ (not a registry?)"
    return False, f"cannot reach {registry}: {error}"


def anonymous_write_probe(registry: str, timeout: float = 2.0) -> str:
    """Whether ``registry`` (plain HTTP, loopback: the one buildcage provisions) lets anybody
    upload: starts a blob upload without credentials and cancels it if it was accepted.
    Returns "closed", "open", or why it could not tell. Never raises."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{registry}/v2/buildcage-doctor/probe/blobs/uploads/"
    request = urllib.request.Request(url, method="POST", data=b"",
                                     headers={"User-Agent": "buildcage"})
    try:
        with opener.open(request, timeout=timeout) as response:
            location = response.headers.get("Location", "")
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return "closed" if exc.code in (401, 403) else f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
        return _describe(exc, timeout)
    if status == 202:
        if location:  # cancel the upload we just started
            if location.startswith("/"):
                location = f"http://{registry}{location}"
            cancel = urllib.request.Request(location, method="DELETE")
            try:
                opener.open(cancel, timeout=timeout).close()
            except Exception:  # noqa: BLE001, S110 - an abandoned upload expires by itself
                pass
        return "open"
    return f"HTTP {status}"
