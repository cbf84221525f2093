"""Reading a ``buildah push --disable-compression IMAGE dir:DIR`` layout on the host (headers
only), the saved reports of builds whose store is gone, and the plan's part in it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.layer_reader import (
    LAYERS_DIR,
    LayersError,
    read_layout,
    reader_command,
    save_report,
    save_where,
    saved_report,
    where_built,
)
from tui.engine.layers import LayerReport
from tui.engine.planner import make_plan


def layer_tar(*members: tuple[str, int | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size in members:
            info = tarfile.TarInfo(name)
            if size is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = size
                tar.addfile(info, io.BytesIO(b"z" * size))
    return out.getvalue()


def write_layout(directory: Path, layers: list[bytes], history: list[dict],
                 compress: bool = False) -> str:
    """A ``dir:`` layout as Buildah writes it: blobs named by their hex digest, manifest.json.
    Returns the image id (the config's digest)."""
    directory.mkdir(parents=True, exist_ok=True)
    descriptors, diff_ids = [], []
    for blob in layers:
        diff_ids.append("sha256:" + hashlib.sha256(blob).hexdigest())
        stored = gzip.compress(blob) if compress else blob
        digest = hashlib.sha256(stored).hexdigest()
        (directory / digest).write_bytes(stored)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar"
                            + ("+gzip" if compress else ""),
                            "digest": f"sha256:{digest}", "size": len(stored)})
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": history}).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    (directory / config_digest).write_bytes(config)
    (directory / "manifest.json").write_text(json.dumps({
        "schemaVersion": 2, "config": {"digest": f"sha256:{config_digest}",
                                       "size": len(config)}, "layers": descriptors}))
    (directory / "version").write_text("Directory Transport Version: 1.1\n")
    return config_digest


HISTORY = [{"created_by": "/bin/sh -c #(nop) ADD file:x in /"},
           {"created_by": "/bin/sh -c printf hostile", "empty_layer": False}]


def test_a_layout_becomes_a_report_with_instructions_and_exact_numbers(tmp_path: Path) -> None:
    base = layer_tar(("./", None), ("./bin/", None), ("./bin/sh", 900))
    top = layer_tar(("bin/", None), ("bin/sh", 1000), ("bin/.wh.gone", 0),
                    ("bin/\x1b]0;title\x07", 3))
    image_id = write_layout(tmp_path / "l", [base, top], HISTORY)
    report = read_layout(tmp_path / "l")
    assert report.image_id == image_id
    assert [layer.instruction for layer in report.layers] == ["ADD file:x in /",
                                                              "RUN printf hostile"]
    assert [layer.size for layer in report.layers] == [900, 1003]
    assert [layer.tar_size for layer in report.layers] == [len(base), len(top)]
    top_changes = {(c.path, c.kind, c.size) for c in report.layers[1].changes}
    assert top_changes == {("/bin/sh", "changed", 1000), ("/bin/gone", "removed", 0),
                           ("/bin/\x1b]0;title\x07", "added", 3)}
    assert report.wasted_bytes == 1900


def test_compressed_layers_are_read_as_streams(tmp_path: Path) -> None:
    write_layout(tmp_path / "l", [layer_tar(("a", 7))], HISTORY[:1], compress=True)
    assert read_layout(tmp_path / "l").layers[0].size == 7


def test_a_blob_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    write_layout(tmp_path / "l", [layer_tar(("a", 7))], HISTORY[:1])
    manifest = json.loads((tmp_path / "l" / "manifest.json").read_text())
    blob = tmp_path / "l" / manifest["layers"][0]["digest"].split(":")[1]
    secret = tmp_path / "secret"
    secret.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(secret)
    with pytest.raises(LayersError, match="not a regular file"):
        read_layout(tmp_path / "l")


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64])
def test_a_manifest_naming_a_path_is_refused(tmp_path: Path, digest: str) -> None:
    write_layout(tmp_path / "l", [layer_tar(("a", 7))], HISTORY[:1])
    path = tmp_path / "l" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["layers"][0]["digest"] = digest
    path.write_text(json.dumps(manifest))
    with pytest.raises(LayersError, match="digest"):
        read_layout(tmp_path / "l")


def test_a_layer_that_is_no_tar_is_a_clear_error(tmp_path: Path) -> None:
    write_layout(tmp_path / "l", [b"{}".ljust(1024, b" ")], HISTORY[:1])
    with pytest.raises(LayersError, match="layer 0 .*bad checksum"):
        read_layout(tmp_path / "l")


def test_no_layout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LayersError, match="manifest"):
        read_layout(tmp_path / "missing")


def test_reports_are_saved_privately_and_found_by_image_id(tmp_path: Path) -> None:
    image_id = write_layout(tmp_path / "l", [layer_tar(("a", 7))], HISTORY[:1])
    report = read_layout(tmp_path / "l")
    data = tmp_path / "data"
    save_report(data, report)
    assert saved_report(data, image_id) == report
    assert saved_report(data, "0" * 64) is None
    assert saved_report(data, "../../x") is None
    folder = data / "layers"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())


def test_a_damaged_saved_report_is_no_report(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "layers").mkdir(parents=True)
    (data / "layers" / ("1" * 64 + ".json")).write_text("{not json")
    assert saved_report(data, "1" * 64) is None


def test_where_an_image_was_built_is_remembered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    save_where(data, "2" * 64, profile="host-ro", project="p1", context="/src/app")
    assert where_built(data, "2" * 64) == {"profile": "host-ro", "project": "p1",
                                          "context": "/src/app"}
    assert where_built(data, "3" * 64) is None


def test_old_saved_reports_are_pruned(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(5):
        save_where(data, f"{i:064x}", profile="host-ro", project="p", context="/c", keep=3)
        os.utime(data / "layers" / f"{i:064x}.where.json", (1000 + i, 1000 + i))
    save_where(data, "f" * 64, profile="host-ro", project="p", context="/c", keep=3)
    names = sorted(p.name for p in (data / "layers").iterdir())
    assert len(names) == 3 and "f" * 64 + ".where.json" in names


def plan_for(tmp_path: Path, profile: str):
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY a /a\n")
    return make_plan(ctx, config=Config(), profile=profile)


def test_isolated_publish_phase_keeps_the_layers_its_store_loses(tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    isolated = plan_for(tmp_path, "isolated")
    script = isolated.publish_command()[-1]
    assert (f"buildah push --quiet --disable-compression {isolated.tag} "
            f"dir:{LAYERS_DIR}") in script
    # Only the trusted publish phase writes them: the build phase never sees the facts.
    assert all(m.target != "/buildcage/facts" for m in isolated.phase_mounts("build"))
    host_ro = plan_for(tmp_path, "host-ro")
    assert "dir:" not in host_ro.publish_command()[-1]  # read later, from the kept store


def test_the_reader_command_is_an_argv_never_a_shell_line() -> None:
    argv = reader_command("localhost/app:1")
    assert argv[:4] == ["buildah", "push", "--quiet", "--disable-compression"]
    assert argv[4] == "localhost/app:1" and argv[5].startswith("dir:")


@pytest.mark.parametrize("image", ["-rf", "", "a b", "x\x1b[2J", "a" * 300,
                                   "localhost/app:1; rm -rf /", "$(id)"])
def test_a_strange_image_name_is_refused(image: str) -> None:
    with pytest.raises(LayersError, match="image"):
        reader_command(image)


def test_report_json_is_the_saved_form(tmp_path: Path) -> None:
    write_layout(tmp_path / "l", [layer_tar(("a", 7))], HISTORY[:1])
    report = read_layout(tmp_path / "l")
    assert LayerReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_a_name_longer_than_a_path_can_be_is_refused(tmp_path: Path) -> None:
    write_layout(tmp_path / "l", [layer_tar(("a/" * 2500 + "x", 1))], HISTORY[:1])
    with pytest.raises(LayersError, match="layer 0 .*longer than a path can be"):
        read_layout(tmp_path / "l")
