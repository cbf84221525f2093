"""Record the event streams the UI tests and screenshots replay, from real Buildah logs.

Run ``python3 tests/data/events/make_streams.py`` after changing the parser or a log; it rewrites
the ``*.jsonl`` files next to it (one ``Event.to_json()`` a line). The logs carry no timestamps,
so line ``i`` is stamped ``START + i * step_s`` with a per-stream ``step_s`` chosen to give
plausible durations (a cold pull-and-push build slower than a warm one); everything else is what
``tui.engine.buildah_output.parse_lines`` makes of the real text.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from tui.engine.buildah_output import BuildahOutputParser  # noqa: E402
from tui.engine.events import (  # noqa: E402
    BuildStarted,
    CacheHit,
    Done,
    Event,
    Failed,
    ImageBuilt,
    ImageInfo,
    ImageLoaded,
    LoadRefused,
    Pushed,
    PushStarted,
    StepStarted,
)
from tui.engine.load import refusal_message  # noqa: E402

START = 1_764_400_000.0
"""A fixed epoch (2025-11-29) so the streams, and screenshots made from them, never change."""


@dataclass(frozen=True)
class Stream:
    name: str
    log: str
    """Path under tests/data."""
    profile: str
    context: str
    step_s: float
    exit_code: int = 0
    tag: str = "localhost/buildcage/hello:latest"
    load: bool = False
    """Built with --load: the runner's ImageLoaded (the podman API's answer) follows the facts."""
    refused_by: str = ""
    """With ``load``: the host's tag names this other image at the load, which is refused."""


STREAMS = (
    Stream("warm-push", "captured/host-ro-hello-manifest-push.log", "host-ro", "examples/hello",
           0.1),
    Stream("warm-push-load", "captured/host-ro-hello-manifest-push.log", "host-ro",
           "examples/hello", 0.1, load=True),
    Stream("warm-push-refused", "captured/host-ro-hello-manifest-push.log", "host-ro",
           "examples/hello", 0.1, load=True, refused_by="0123456789ab" + "c" * 52),
    Stream("cold-pull-push", "captured/isolated-hello-pull-push.log", "isolated",
           "examples/hello", 0.35),
    Stream("multistage-target", "buildah/target.log", "host-ro", "examples/multistage", 0.3,
           tag="localhost/corpus-target:latest"),
    Stream("failed-multistage", "buildah/verify-cleanup.log", "host-ro", "examples/broken", 0.3,
           exit_code=1, tag="localhost/buildcage/broken:latest"),
    Stream("failed-exit42", "buildah/exit42.log", "host-ro", "examples/broken", 0.5, exit_code=1,
           tag="localhost/buildcage/broken:latest"),
)


def record(stream: Stream) -> list[Event]:
    """BuildStarted, then what the runner sends for the log: the build phase's lines parsed,
    the publish phase's push lines parsed, the facts the publish phase wrote (here taken from
    the captured ``buildcage:`` lines our builder script printed when these logs were made),
    and the Done."""
    lines = (ROOT / "tests" / "data" / stream.log).read_text().splitlines()
    split = next((i for i, line in enumerate(lines) if line.startswith("buildcage: ")),
                 len(lines))
    build, publish = lines[:split], [x for x in lines[split:] if not x.startswith("buildcage: ")]
    protocol = [x.split(" ", 2)[1:] for x in lines[split:] if x.startswith("buildcage: ")]
    clock = iter(START + 0.5 + i * stream.step_s for i in range(len(lines) + 10))
    parser = BuildahOutputParser()
    body: list[Event] = []
    for line in build:
        body += parser.feed(line, next(clock))
    image = next((x for x in reversed(build) if len(x) == 64 and x.isalnum()), "")
    pushed: list[Pushed] = []
    if stream.exit_code == 0:
        now = next(clock)
        body += parser.finish(0, now)
        for kind, text in protocol:
            if kind == "push":
                body.append(PushStarted(ref=text, time=now))
        parser.begin_push()
        for line in publish:
            body += parser.feed(line, next(clock))
        now = next(clock)
        body.append(ImageBuilt(image_id=image, time=now))
        for kind, text in protocol:
            if kind == "manifest":
                layers = tuple(x["size"] for x in json.loads(text)["layers"])
                body.append(ImageInfo(layers=layers, time=now))
            elif kind == "pushed":
                ref, digest = text.split()
                pushed.append(Pushed(ref=ref, digest=digest, time=now))
        body += pushed
        if stream.load and stream.refused_by:
            now = next(clock)
            body.append(LoadRefused(tag=stream.tag, image_id=image,
                                    host_image_id=stream.refused_by, time=now))
        elif stream.load:
            body.append(ImageLoaded(image_id=image, tag=stream.tag, tags=(stream.tag,),
                                    time=next(clock)))
    end = next(clock)
    body += parser.finish(stream.exit_code, end)
    if stream.refused_by:  # the runner's Failed for it, after the build's last events
        body.append(Failed(message=refusal_message(stream.tag, stream.refused_by), time=end))
    failed = any(isinstance(e, Failed) for e in body) or stream.exit_code != 0
    started = BuildStarted(build_id=f"replay-{stream.name}", profile=stream.profile,
                           context=stream.context, tag=stream.tag, time=START)
    end += 0.2
    done = Done(
        status="failed" if failed else "succeeded",
        image_id=image if not failed or stream.refused_by else "",
        duration_s=round(end - START, 3),
        steps_total=sum(isinstance(e, StepStarted) for e in body),
        cache_hits=sum(isinstance(e, CacheHit) for e in body),
        pushed=f"{pushed[-1].ref}@{pushed[-1].digest}" if pushed else "",
        loaded=stream.tag if stream.load and not failed else "",  # refused: not loaded
        time=end,
    )
    return [started, *body, done]


def render(stream: Stream) -> str:
    return "".join(event.to_json() + "\n" for event in record(stream))


def main() -> None:
    for stream in STREAMS:
        path = HERE / f"{stream.name}.jsonl"
        path.write_text(render(stream))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
