"""Captures the inspect data in this folder from real builder containers (needs podman):
one container per built-in profile, created exactly as a build would and never started.

    python tests/data/inspect/capture.py [PROFILE ...]   (default: all four)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tui.engine.containers import remove_container
from tui.engine.renderings import create_kwargs
from tui.engine.session import Engine
from tui.engine.stores import prepare, release

HERE = Path(__file__).resolve().parent
HELLO = HERE.parents[2] / "examples" / "hello"


def main(names: list[str]) -> None:
    engine = Engine()
    client = engine.client()
    for name in names or ["host-ro", "isolated", "project", "host-rw"]:
        plan = engine.plan(HELLO, profile=name, confirmed=True, project="inspect-sample",
                           build_id="0123456789ab")
        state = prepare(client, plan, pin=False)
        kwargs = create_kwargs(plan)
        kwargs["name"] = "buildcage-inspect-sample"
        container = client.containers.create(**kwargs)
        try:
            container.reload()
            (HERE / f"{name}.json").write_text(json.dumps(container.attrs, indent=1,
                                                          sort_keys=True))
        finally:
            remove_container(container)
            release(client, state)


if __name__ == "__main__":
    main(sys.argv[1:])
