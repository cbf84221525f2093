"""The bench's workloads, generated fresh in a scratch directory (issue 9's three, and the
repository's examples/multistage), and the one-file edit each gets.

tiny:  FROM + 2 RUN + COPY.
data:  two stages; a 30 MB COPY and 200 files tarred in the first, the tarball copied on.
steps: 15 RUN + COPY + RUN.
compile (not in the default set): FROM + one CPU-heavy RUN (64 MB of random bytes gzipped, a
       stand-in for a compile or a package install) + COPY + RUN: where a cache has something
       to save.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BASE = "127.0.0.1:5000/buildcage/busybox:latest"
ROOT = Path(__file__).resolve().parents[1]
NAMES = ("tiny", "data", "steps", "multistage")
"""The default set (issue 9's); ``EXTRA`` may be asked for by name."""
EXTRA = ("compile",)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make(name: str, scratch: Path) -> Path:
    """The context of workload ``name`` under ``scratch`` (made once, then reused)."""
    ctx = scratch / name
    if ctx.exists():
        return ctx
    if name == "multistage":
        shutil.copytree(ROOT / "examples" / "multistage", ctx)
        return ctx
    if name == "tiny":
        _write(ctx / "app.txt", "version 0\n")
        _write(ctx / "Containerfile", f"FROM {BASE}\nRUN echo one > /one\nRUN echo two > /two\n"
                                      "COPY app.txt /app.txt\n")
    elif name == "data":
        (ctx / "files").mkdir(parents=True)
        with open(ctx / "blob.bin", "wb") as out:
            out.write(os.urandom(30 * 1024 * 1024))
        for i in range(200):
            _write(ctx / "files" / f"f{i:03}.txt", f"file {i}\n" * 50)
        _write(ctx / "app.txt", "version 0\n")
        _write(ctx / "Containerfile", f"""FROM {BASE} AS build
COPY blob.bin /src/blob.bin
COPY files /src/files
RUN tar -cf /src/files.tar -C /src files && wc -c /src/blob.bin
COPY app.txt /src/app.txt

FROM {BASE}
COPY --from=build /src/files.tar /files.tar
COPY --from=build /src/app.txt /app.txt
""")
    elif name == "steps":
        runs = "".join(f"RUN echo step {i} > /step{i}\n" for i in range(15))
        _write(ctx / "app.txt", "version 0\n")
        _write(ctx / "Containerfile", f"FROM {BASE}\n{runs}COPY app.txt /app.txt\n"
                                      "RUN cat /app.txt\n")
    elif name == "compile":
        _write(ctx / "app.txt", "version 0\n")
        _write(ctx / "Containerfile", f"FROM {BASE}\nRUN dd if=/dev/urandom bs=1M count=64 "
                                      "2>/dev/null | gzip -6 > /a.gz\n"
                                      "COPY app.txt /app.txt\nRUN cat /app.txt > /copy\n")
    else:
        raise ValueError(name)
    # Readable by a user-namespaced builder's root (isolated reads the context in place).
    for path in [ctx, *ctx.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ctx


def edit(ctx: Path, n: int) -> None:
    """Changes one file the build copies (late in the Containerfile): the one-file edit."""
    target = ctx / ("app.sh" if (ctx / "app.sh").exists() else "app.txt")
    text = target.read_text()
    marker = "# bench edit"
    lines = [line for line in text.splitlines() if not line.startswith(marker)]
    target.write_text("\n".join([*lines, f"{marker} {n}"]) + "\n")
