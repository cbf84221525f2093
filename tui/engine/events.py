"""Typed build events: Buildah's text is parsed once into these, and every consumer
(the TUI, the CLI's ``--json`` lines, history, benchmarks) reads the same objects.

Events are frozen dataclasses so they can be recorded, replayed and compared. Each one has a
``time`` (seconds since the epoch, taken when the line arrived) and a stable ``event`` name used in
their JSON form.
"""

from __future__ import annotations

import dataclasses
import json
import time as _time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from tui.engine.cache_reasons import MissReason, reason_from_dict

Status = Literal["succeeded", "failed", "canceled"]


def _now() -> float:
    return _time.time()


@dataclass(frozen=True)
class Event:
    """Base of every event."""

    name: ClassVar[str] = "event"
    time: float = field(default_factory=_now, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = {"event": self.name}
        data.update(dataclasses.asdict(self))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)


E = TypeVar("E", bound="Event")
_FIELDS: dict[type, int] = {}


def made(cls: type[E], **values: Any) -> E:
    """``cls(**values)`` for an event given every one of its fields, without the frozen
    dataclass's ``__init__``, which sets each field through ``object.__setattr__``: the parser
    makes a StepStarted and a StepDone per step, 5 and 6 fields (0.2 s of its 3.1 s for 300,000
    recorded lines, profiled). A missing or extra field is refused, as the real one would
    (counted: a name spelled wrong is left to tests/unit/test_events.py, which compares each
    use with the real constructor)."""
    count = _FIELDS.get(cls)
    if count is None:
        count = _FIELDS[cls] = len(dataclasses.fields(cls))
    if len(values) != count:
        raise TypeError(f"{cls.__name__} has {count} fields, {len(values)} given")
    event = object.__new__(cls)
    event.__dict__.update(values)
    return event


@dataclass(frozen=True)
class BuildStarted(Event):
    """The builder container was created and started."""

    name: ClassVar[str] = "build_started"
    build_id: str
    profile: str
    context: str
    tag: str
    container_id: str = ""


@dataclass(frozen=True)
class StepStarted(Event):
    """``[stage/stages] STEP step/steps: INSTRUCTION``; stage numbers are 1-based."""

    name: ClassVar[str] = "step_started"
    stage: int
    stages: int
    step: int
    steps: int
    instruction: str


@dataclass(frozen=True)
class CacheHit(Event):
    """``--> Using cache LAYER``: the current step was served from the layer cache."""

    name: ClassVar[str] = "cache_hit"
    stage: int
    step: int
    layer_id: str


@dataclass(frozen=True)
class StepDone(Event):
    """A step finished; ``layer_id`` is the short id Buildah printed (``--> abc123``), if any."""

    name: ClassVar[str] = "step_done"
    stage: int
    step: int
    layer_id: str
    duration_s: float
    cached: bool = False


@dataclass(frozen=True)
class PullStarted(Event):
    """``Trying to pull REF...``"""

    name: ClassVar[str] = "pull_started"
    ref: str


@dataclass(frozen=True)
class BlobCopied(Event):
    """``Copying blob DIGEST done`` (or ``skipped: already exists``), during a pull or a push."""

    name: ClassVar[str] = "blob_copied"
    digest: str
    phase: Literal["pull", "push"]
    skipped: bool = False


@dataclass(frozen=True)
class ConfigCopied(Event):
    """``Copying config DIGEST``"""

    name: ClassVar[str] = "config_copied"
    digest: str
    phase: Literal["pull", "push"]


@dataclass(frozen=True)
class ManifestWritten(Event):
    """``Writing manifest to image destination``: a pull or push is complete."""

    name: ClassVar[str] = "manifest_written"
    phase: Literal["pull", "push"]


@dataclass(frozen=True)
class Committed(Event):
    """``COMMIT [NAME]``: the final image of the build is being written."""

    name: ClassVar[str] = "commit"
    image: str


@dataclass(frozen=True)
class Tagged(Event):
    """``Successfully tagged NAME``"""

    name: ClassVar[str] = "tagged"
    image: str


@dataclass(frozen=True)
class ImageBuilt(Event):
    """The full 64-hex image id Buildah prints last."""

    name: ClassVar[str] = "image_built"
    image_id: str


@dataclass(frozen=True)
class ImageInfo(Event):
    """The built image's layers (sizes in bytes, from its manifest), printed by our builder script
    as ``buildcage: manifest JSON``."""

    name: ClassVar[str] = "image_info"
    layers: tuple[int, ...]
    overlay: str = ""
    """The overlay the build's store was mounted with: "kernel", "fuse" (fuse-overlayfs), or ""
    (not known), from containers/storage's record read by the trusted publish phase."""

    def __post_init__(self) -> None:
        # JSON gives a list back; keep the event hashable and equal to the original.
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def size(self) -> int:
        return sum(self.layers)


@dataclass(frozen=True)
class BuildWarning(Event):
    """``level=warning msg=...`` or ``WARN[0000] ...``"""

    name: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class PushStarted(Event):
    """The push of the built image to ``ref`` began."""

    name: ClassVar[str] = "push_started"
    ref: str


@dataclass(frozen=True)
class Pushed(Event):
    """The image is in the registry (or OCI layout) under ``ref`` with manifest ``digest``."""

    name: ClassVar[str] = "pushed"
    ref: str
    digest: str


@dataclass(frozen=True)
class ImageLoaded(Event):
    """The built image is in the host's own podman store (``--load``): its id and names as the
    podman API reports them after the load, never as the build printed them."""

    name: ClassVar[str] = "image_loaded"
    image_id: str
    tag: str
    """The name it was loaded under (the build's tag)."""
    tags: tuple[str, ...] = ()
    """Every name the image has on the host now."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))  # JSON gives a list back


@dataclass(frozen=True)
class LoadRefused(Event):
    """``--load`` did not move ``tag``: on the host it names ``host_image_id``, another image
    that buildcage did not load there (``--load-overwrite`` moves it)."""

    name: ClassVar[str] = "load_refused"
    tag: str
    image_id: str
    host_image_id: str


@dataclass(frozen=True)
class CacheExported(Event):
    """The registry layer cache after the build, as the trusted publish phase recorded it (a
    file, never the output): ``images`` the build used are listed in the cache's index of
    ``repo``, ``pushed`` of them were new there. ``error`` says why the cache was not updated
    (the build itself is not failed for it)."""

    name: ClassVar[str] = "cache_exported"
    repo: str
    images: int = 0
    pushed: int = 0
    error: str = ""


@dataclass(frozen=True)
class PhaseDone(Event):
    """One phase's container exited: ``fetch`` and ``publish`` are buildcage's trusted work
    (pulling, pushing, reading facts), ``build`` runs the Containerfile's steps."""

    name: ClassVar[str] = "phase_done"
    phase: Literal["fetch", "build", "publish"]
    duration_s: float
    exit_code: int


@dataclass(frozen=True)
class Failed(Event):
    """The build failed. ``step`` names the failing instruction when Buildah said which."""

    name: ClassVar[str] = "failed"
    message: str
    step: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class LogLine(Event):
    """One line of raw output, in order; every line is also one of these."""

    name: ClassVar[str] = "log"
    line: str

    @classmethod
    def of(cls, line: str, time: float) -> LogLine:
        """The same event as ``LogLine(line=line, time=time)``, made in a third of the time: a
        frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (0.97 µs
        against 0.32 µs per line, measured; every line of a build is one of these)."""
        event = object.__new__(cls)
        fields = event.__dict__
        fields["time"] = time
        fields["line"] = line
        return event

    def to_dict(self) -> dict[str, Any]:
        """``Event.to_dict``'s answer without ``dataclasses.asdict`` (which deep-copies every
        field): 3/4 of what ``build --json`` spent on each line (profiled, 100,000 lines)."""
        return {"event": self.name, "time": self.time, "line": self.line}


@dataclass(frozen=True)
class CacheMiss(Event):
    """Step ``stage:step`` ran instead of coming from the layer cache, and why (typed reasons,
    see tui.engine.cache_reasons), compared with build ``compared_with`` of history (None: no
    earlier build to compare with). Made by the engine from history and the host's view of the
    context, never from build output; "unknown" (with what was checked) when nothing explains
    it."""

    name: ClassVar[str] = "cache_miss"
    stage: int
    step: int
    instruction: str
    reasons: tuple[MissReason, ...]
    compared_with: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", tuple(
            r if isinstance(r, MissReason) else reason_from_dict(r) for r in self.reasons))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["reasons"] = [reason.to_dict() for reason in self.reasons]
        return data


@dataclass(frozen=True)
class ImageFact:
    """One image the build read from outside, as the store held it: ``ref`` as the
    Containerfile names it (build arguments applied), its image id and manifest digest."""

    ref: str
    id: str = ""
    digest: str = ""


@dataclass(frozen=True)
class BaseImages(Event):
    """The images the build's stages start from and its ``COPY --from`` reads, read out of band
    by the trusted publish phase (``buildah inspect``); only refs it could inspect."""

    name: ClassVar[str] = "base_images"
    images: tuple[ImageFact, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(
            i if isinstance(i, ImageFact) else ImageFact(**i) for i in self.images))


@dataclass(frozen=True)
class Unchanged(Event):
    """Nothing the build's steps are keyed on changed since build ``build`` of history, and its
    image is still under the tag in the same store: that image is the result, every step a
    cache hit as Buildah would have found it, and no container ran (tui.engine.unchanged).
    Decided from history and the host's reading of the Containerfile, the context and the
    store's records, never from build output."""

    name: ClassVar[str] = "unchanged"
    build: int
    image_id: str


@dataclass(frozen=True)
class Done(Event):
    """The last event of every build."""

    name: ClassVar[str] = "done"
    status: Status
    image_id: str = ""
    duration_s: float = 0.0
    steps_total: int = 0
    cache_hits: int = 0
    pushed: str = ""
    loaded: str = ""
    """The host tag the image was loaded under (``--load``), else ""."""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        BuildStarted, StepStarted, CacheHit, StepDone, PullStarted, BlobCopied, ConfigCopied,
        ManifestWritten, Committed, Tagged, ImageBuilt, ImageInfo, BuildWarning, PushStarted,
        Pushed, ImageLoaded, LoadRefused, CacheExported, PhaseDone, Failed, LogLine, Done,
        CacheMiss, BaseImages, Unchanged,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form (used to replay recorded builds)."""
    fields = dict(data)
    cls = EVENT_TYPES[fields.pop("event")]
    return cls(**fields)


def event_from_json(line: str) -> Event:
    return event_from_dict(json.loads(line))
