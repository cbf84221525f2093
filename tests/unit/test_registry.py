"""Tests for image reference parsing and registry reachability."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from tui.engine.registry import (
    BadReference,
    ImageRef,
    OciTarget,
    check_reachable,
    is_valid_host,
    parse_push_target,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32
TAG_MESSAGE = (
    "tag 'a b' has invalid characters (allowed: A-Z a-z 0-9 _ . -, at most 128,"
    " not starting with . or -)"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", ImageRef("docker.io", "alpine", "latest", "")),
        ("alpine:3.20", ImageRef("docker.io", "alpine", "3.20", "")),
        ("library/alpine", ImageRef("docker.io", "library/alpine", "latest", "")),
        ("quay.io/podman/stable:v5", ImageRef("quay.io", "podman/stable", "v5", "")),
        ("localhost/buildcage/builder", ImageRef("localhost", "buildcage/builder", "latest", "")),
        ("127.0.0.1:5000/app:dev", ImageRef("127.0.0.1:5000", "app", "dev", "")),
        ("reg.example:443/a/b/c", ImageRef("reg.example:443", "a/b/c", "latest", "")),
        ("[::1]:5000/app", ImageRef("[::1]:5000", "app", "latest", "")),
        ("my_app__x.y-z", ImageRef("docker.io", "my_app__x.y-z", "latest", "")),
        (f"alpine@{DIGEST}", ImageRef("docker.io", "alpine", "", DIGEST)),
        (f"alpine:3@{DIGEST}", ImageRef("docker.io", "alpine", "3", DIGEST)),
        ("  alpine  ", ImageRef("docker.io", "alpine", "latest", "")),
        # Without a '/', "localhost:5000" is a name and a tag, as in Docker.
        ("localhost:5000", ImageRef("docker.io", "localhost", "5000", "")),
    ],
)
def test_parse_valid(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("alpine", "docker.io/alpine:latest"),
        ("127.0.0.1:5000/app:dev", "127.0.0.1:5000/app:dev"),
        (f"alpine@{DIGEST}", f"docker.io/alpine@{DIGEST}"),
        (f"quay.io/a/b:1@{DIGEST}", f"quay.io/a/b:1@{DIGEST}"),
    ],
)
def test_str_is_canonical_and_round_trips(text: str, canonical: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty reference"),
        ("   ", "empty reference"),
        ("MyApp", "repository name must be lowercase: 'MyApp'"),
        ("quay.io/Org/app", "repository name must be lowercase: 'Org/app'"),
        ("app:a b", TAG_MESSAGE),
        ("app:.hidden", "tag '.hidden' has invalid characters"),
        ("app:" + "x" * 129, "at most 128"),
        ("app:", "tag is empty after ':'"),
        ("app@sha256:xyz", "digest 'sha256:xyz' is invalid"),
        ("app@sha256:" + "ab" * 16, "sha256 needs 64"),
        ("app@", "digest '' is invalid"),
        ("a//b", "empty path component"),
        ("quay.io/", "has no repository name"),
        ("-app", "repository component '-app' is invalid"),
        ("a..b", "repository component 'a..b' is invalid"),
        ("bad_host.example:x/app", "registry host 'bad_host.example:x' is invalid"),
        ("a/" + "b" * 260, "longer than 255"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(BadReference) as info:
        parse_reference(text)
    assert message in str(info.value)


def test_bad_reference_is_value_error() -> None:
    with pytest.raises(ValueError, match="empty reference"):
        parse_reference("")


def test_is_valid_host() -> None:
    assert is_valid_host("127.0.0.1:5000")
    assert is_valid_host("registry.example.com")
    assert not is_valid_host("reg example")
    assert not is_valid_host("host:port")


@pytest.mark.parametrize("text", ["", "none", "None", "  "])
def test_push_target_none(text: str) -> None:
    assert parse_push_target(text) is None


def test_push_target_oci_and_registry() -> None:
    assert parse_push_target("oci:/srv/images/app:v1") == OciTarget("/srv/images/app", "v1")
    assert parse_push_target("oci:/srv/images/app") == OciTarget("/srv/images/app", "latest")
    assert str(parse_push_target("oci:/srv/app:v1")) == "oci:/srv/app:v1"
    assert parse_push_target("127.0.0.1:5000/app") == ImageRef(
        "127.0.0.1:5000", "app", "latest", ""
    )


def test_push_target_errors() -> None:
    with pytest.raises(BadReference, match="must be absolute: 'rel/path'"):
        parse_push_target("oci:rel/path")
    with pytest.raises(BadReference, match="tag 'a b'"):
        parse_push_target("oci:/srv/app:a b")
    with pytest.raises(BadReference, match="lowercase"):
        parse_push_target("Reg.Example/App")


class _Handler(http.server.BaseHTTPRequestHandler):
    """A fake registry: /v2/ answers 200, /auth/v2/ 401, anything else 404."""

    def do_GET(self) -> None:
        code = {"/v2/": 200, "/auth/v2/": 401}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # keep pytest output clean


@pytest.fixture
def fake_registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_reachable_http_registry(fake_registry: str) -> None:
    assert check_reachable(fake_registry, tls_verify=False) == (
        True,
        f"{fake_registry} answered (registry API v2)",
    )


def test_reachable_401_counts(fake_registry: str) -> None:
    ok, message = check_reachable(f"{fake_registry}/auth", tls_verify=False)
    assert ok
    assert "login required" in message


def test_not_a_registry(fake_registry: str) -> None:
    ok, message = check_reachable(f"{fake_registry}/nothing", tls_verify=False)
    assert not ok
    assert "HTTP 404" in message


def test_tls_verify_against_plain_http_fails(fake_registry: str) -> None:
    ok, message = check_reachable(fake_registry, tls_verify=True)
    assert not ok
    assert message.startswith(f"cannot reach {fake_registry}: ")


def test_closed_port() -> None:
    host = f"127.0.0.1:{_closed_port()}"
    for verify in (False, True):
        assert check_reachable(host, tls_verify=verify, timeout=1.0) == (
            False,
            f"cannot reach {host}: connection refused",
        )


def test_never_raises_on_garbage() -> None:
    ok, message = check_reachable("not a host\n", tls_verify=False, timeout=0.5)
    assert not ok
    assert message.startswith("cannot reach")
