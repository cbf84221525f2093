"""Tests for Containerfile reading: stages, ARGs and base images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.engine.containerfile import (
    ContainerfileError,
    Stage,
    find_containerfile,
    parse_containerfile,
    substitute,
)

MULTI_STAGE = """\
# syntax=docker/dockerfile:1
# a comment before anything
ARG REGISTRY=quay.io
ARG GO_VERSION=1.22 DISTRO
ARG BASE=${REGISTRY}/fedora/fedora:40

from --platform=$BUILDPLATFORM docker.io/library/golang:${GO_VERSION} AS Build
ARG VERSION=dev
RUN go build \\
    # a comment inside a continuation is dropped
    -ldflags "-X main.version=$VERSION" \\
    -o /out/app ./cmd/app

FROM build as test
RUN go test ./...

FROM $BASE AS runtime
ARG VERSION
COPY --from=build /out/app /usr/bin/app

FROM scratch
COPY --from=runtime / /

  Run echo \\
FROM not-a-stage
FROM ${DISTRO:-alpine}:3
"""


def test_stages() -> None:
    info = parse_containerfile(MULTI_STAGE)
    assert info.stages == [
        Stage(0, "build", "docker.io/library/golang:${GO_VERSION}"),
        Stage(1, "test", "build"),
        Stage(2, "runtime", "$BASE"),
        Stage(3, None, "scratch"),
        Stage(4, None, "${DISTRO:-alpine}:3"),
    ]


def test_args() -> None:
    info = parse_containerfile(MULTI_STAGE)
    assert info.global_args == {
        "REGISTRY": "quay.io",
        "GO_VERSION": "1.22",
        "DISTRO": None,
        "BASE": "${REGISTRY}/fedora/fedora:40",
    }
    # The later bare "ARG VERSION" must not hide the default given in the build stage.
    assert info.args == {**info.global_args, "VERSION": "dev"}


def test_base_images_with_defaults() -> None:
    info = parse_containerfile(MULTI_STAGE)
    assert info.base_images({}) == [
        "docker.io/library/golang:1.22",
        "quay.io/fedora/fedora:40",
        "alpine:3",
    ]


def test_base_images_with_build_args() -> None:
    info = parse_containerfile(MULTI_STAGE)
    images = info.base_images({"GO_VERSION": "1.23", "REGISTRY": "reg.lan", "DISTRO": "debian"})
    assert images == ["docker.io/library/golang:1.23", "reg.lan/fedora/fedora:40", "debian:3"]
    # Overriding BASE itself wins over its default (and over REGISTRY).
    assert parse_containerfile(MULTI_STAGE).base_images({"BASE": "ubi9"})[1] == "ubi9"


def test_stage_args_do_not_reach_from_lines() -> None:
    text = "FROM alpine\nARG IMG=busybox\nFROM $IMG\nFROM alpine\n"
    info = parse_containerfile(text)
    assert info.global_args == {}
    assert info.args == {"IMG": "busybox"}
    # $IMG is unset for FROM (only global ARGs apply) so it expands to nothing and is left out;
    # duplicates are listed once.
    assert info.base_images() == ["alpine"]


def test_later_stage_name_is_an_image() -> None:
    # Only *earlier* stages can be referenced by name.
    info = parse_containerfile("FROM tools\nFROM alpine AS tools\nFROM tools\n")
    assert info.base_images() == ["tools", "alpine"]


def test_arg_quoting_and_forms() -> None:
    info = parse_containerfile('ARG A=1 B "C=x y" D=\nFROM alpine\n')
    assert info.global_args == {"A": "1", "B": None, "C": "x y", "D": ""}


def test_continuations_and_escape_directive() -> None:
    text = "# escape=`\nARG IMG=alpine\nFROM `\n  $IMG `\n  AS base\nRUN dir c:\\\n"
    info = parse_containerfile(text)
    assert info.stages == [Stage(0, "base", "$IMG")]
    assert info.base_images() == ["alpine"]


def test_heredoc_body_is_not_parsed() -> None:
    text = "FROM alpine\nRUN <<EOF\nFROM evil\nARG NOPE=1\nEOF\nFROM busybox\n"
    info = parse_containerfile(text)
    assert [s.base for s in info.stages] == ["alpine", "busybox"]
    assert "NOPE" not in info.args


def test_empty_and_comment_only() -> None:
    assert parse_containerfile("").stages == []
    assert parse_containerfile("# only a comment\n\n").base_images() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM\n", "line 1: FROM needs an image"),
        ("ARG X\n\nFROM --platform=linux/arm64\n", "line 3: FROM needs an image"),
        ("FROM alpine AS\n", "line 1: expected 'FROM IMAGE [AS NAME]'"),
        ("FROM alpine base\n", "expected 'FROM IMAGE [AS NAME]'"),
    ],
)
def test_bad_from(text: str, message: str) -> None:
    with pytest.raises(ContainerfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_containerfile(text)


def test_substitute_forms() -> None:
    values = {"A": "x", "E": ""}
    assert substitute("$A-${A}-${B}-${B:-d}-${A:-d}-${A:+alt}-${B:+alt}-${E:-e}", values) == (
        "x-x--d-x-alt--e"
    )


def test_find_containerfile(tmp_path: Path) -> None:
    assert find_containerfile(tmp_path) is None
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    assert find_containerfile(tmp_path) == tmp_path / "Dockerfile"
    (tmp_path / "Containerfile").write_text("FROM alpine\n")
    assert find_containerfile(tmp_path) == tmp_path / "Containerfile"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Containerfile").mkdir()  # a directory is not a Containerfile
    assert find_containerfile(tmp_path / "sub") is None


def test_parser_edge_cases_match_buildah() -> None:
    # BuildKit's parser (the one Buildah uses) reads these; the old regexes got the first wrong.
    assert parse_containerfile("\ufeffFROM alpine\n").base_images() == ["alpine"]  # UTF-8 BOM
    # A directive after a comment is a comment: the backtick is not an escape here.
    with pytest.raises(ContainerfileError, match="line 3: expected"):
        parse_containerfile("# hello\n# escape=`\nFROM a `\n AS b\n")
    text = (
        "FROM alpine AS s\n"
        "RUN --mount=type=bind,from=s,target=/y <<E1 <<-'E2'\nFROM x\nE1\n\tARG NOPE\n\tE2\n"
        "COPY --from=busybox:1 a b\n"
    )
    info = parse_containerfile(text)
    assert [s.base for s in info.stages] == ["alpine"] and "NOPE" not in info.args
    assert info.copy_from == ["s", "busybox:1"]
    assert info.external_images() == ["alpine", "busybox:1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM alpine\nRUN <<EOF\necho hi\n", "unterminated heredoc"),
        ("FROM alpine\nRUN echo " + "x" * 70000 + "\n", "greater than max allowed size"),
        ("FROM alpine\nFROM busy\0box\n", "line 2: the Containerfile has a NUL byte"),
    ],
)
def test_parser_rejects(text: str, message: str) -> None:
    with pytest.raises(ContainerfileError, match=message):
        parse_containerfile(text)
