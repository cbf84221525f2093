"""Why a step ran instead of coming from Buildah's layer cache: the typed reasons a ``CacheMiss``
event carries (``tui.engine.cache_why`` decides them, from history and the host's view of the
context).

Each reason is a frozen dataclass with a ``kind`` (its stable name in JSON), a ``short()`` text
for a table cell and a ``full()`` sentence. A build argument marked secret (named like one, see
``tui.engine.planner.secret_looking_args``) never has its values in a reason: only that it
changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class MissReason:
    """Base of every reason."""

    kind: ClassVar[str] = "reason"

    def short(self) -> str:
        raise NotImplementedError

    def full(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class NoCache(MissReason):
    """The build was asked for with ``--no-cache``."""

    kind: ClassVar[str] = "no_cache"

    def short(self) -> str:
        return "--no-cache"

    def full(self) -> str:
        return "the build ran with --no-cache: no step is taken from the cache"


@dataclass(frozen=True)
class FreshStore(MissReason):
    """The profile's store is new for every build (``isolated``): nothing to take from."""

    kind: ClassVar[str] = "fresh_store"
    profile: str = ""

    def short(self) -> str:
        return "fresh store"

    def full(self) -> str:
        return (f"profile {self.profile} builds in a fresh store that is removed afterwards: "
                "it has no cache")


@dataclass(frozen=True)
class NoEarlierBuild(MissReason):
    """No build of this context was recorded in this store before."""

    kind: ClassVar[str] = "no_earlier_build"
    store: str = ""

    def short(self) -> str:
        return "first build"

    def full(self) -> str:
        return f"no earlier build of this context in {self.store} is recorded"


@dataclass(frozen=True)
class OtherStore(MissReason):
    """The last build of this context ran in another store (another profile or project)."""

    kind: ClassVar[str] = "other_store"
    build: int = 0
    store: str = ""
    """Where this build's cache lives."""
    previous_store: str = ""
    previous_profile: str = ""

    def short(self) -> str:
        return "other store"

    def full(self) -> str:
        return (f"no earlier build of this context in {self.store}; the last one (build "
                f"#{self.build}, profile {self.previous_profile}) used {self.previous_store}, "
                "whose cache this build cannot see")


@dataclass(frozen=True)
class InstructionChanged(MissReason):
    """The step's text differs from the step at this place in the earlier build."""

    kind: ClassVar[str] = "instruction_changed"
    old: str = ""
    new: str = ""
    build: int = 0

    def short(self) -> str:
        return "instruction" if self.old else "new step"

    def full(self) -> str:
        if not self.old:
            return f"a step build #{self.build} did not have: {self.new!r}"
        return f"the instruction changed since build #{self.build}: {self.old!r} -> {self.new!r}"


@dataclass(frozen=True)
class BuildArgChanged(MissReason):
    """A build argument a RUN step sees (Buildah keys RUN steps on them) has another value.
    ``None`` stands for "not set"; a secret one has no values, only ``secret``."""

    kind: ClassVar[str] = "build_arg_changed"
    name: str = ""
    old: str | None = None
    new: str | None = None
    secret: bool = False
    build: int = 0

    def short(self) -> str:
        return f"arg {self.name}"

    def full(self) -> str:
        if self.secret:
            return (f"build argument {self.name} changed since build #{self.build} (marked "
                    "secret: values not shown)")
        return (f"build argument {self.name} changed since build #{self.build}: "
                f"{_value(self.old)} -> {_value(self.new)}")


def _value(value: str | None) -> str:
    return "(not set)" if value is None else repr(value)


@dataclass(frozen=True)
class FileChange:
    """One path a COPY/ADD reads that changed: ``what`` is content, mode, owner, type or link."""

    path: str
    what: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "what", tuple(self.what))


@dataclass(frozen=True)
class FilesChanged(MissReason):
    """Context files a COPY/ADD reads were added, removed or changed (ignore file applied).
    ``more`` counts paths left out of the lists (they can be long)."""

    kind: ClassVar[str] = "files_changed"
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[FileChange, ...] = ()
    more: int = 0
    build: int = 0
    listed: bool = True
    """False when the earlier build's file list is no longer kept: only "they differ"."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "added", tuple(self.added))
        object.__setattr__(self, "removed", tuple(self.removed))
        object.__setattr__(self, "changed", tuple(
            c if isinstance(c, FileChange) else FileChange(**c) for c in self.changed))

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed) + self.more

    def short(self) -> str:
        if not self.listed:
            return "files"
        if self.count == 1:
            path = (self.added or self.removed or tuple(c.path for c in self.changed) or ("",))[0]
            return f"file {path}"
        return f"{self.count} files"

    def full(self) -> str:
        if not self.listed:
            return (f"the files it copies differ from build #{self.build} (that build's file "
                    "list is no longer kept)")
        parts = []
        if self.changed:
            parts.append("changed " + ", ".join(
                f"{c.path} ({', '.join(c.what)})" for c in self.changed))
        if self.added:
            parts.append("added " + ", ".join(self.added))
        if self.removed:
            parts.append("removed " + ", ".join(self.removed))
        if self.more:
            parts.append(f"and {self.more} more")
        return f"files it copies changed since build #{self.build}: " + "; ".join(parts)


@dataclass(frozen=True)
class ImageChanged(MissReason):
    """The image a stage starts from (or a ``COPY --from`` reads) is another image now. Ids and
    digests come from the trusted publish phase (``buildah inspect``), never from output."""

    kind: ClassVar[str] = "image_changed"
    ref: str = ""
    old_ref: str = ""
    old_id: str = ""
    new_id: str = ""
    old_digest: str = ""
    new_digest: str = ""
    role: str = "base"
    """"base" (FROM) or "copy --from"."""
    build: int = 0

    def short(self) -> str:
        return "base image" if self.role == "base" else "--from image"

    def full(self) -> str:
        what = "base image" if self.role == "base" else "image COPY --from reads"
        old = f"{self.old_ref} " if self.old_ref and self.old_ref != self.ref else ""
        return (f"the {what} {self.ref} changed since build #{self.build}: "
                f"{old}{_image(self.old_id, self.old_digest)} -> "
                f"{_image(self.new_id, self.new_digest)}")


def _image(image_id: str, digest: str) -> str:
    shown = f"id {image_id[:12]}" if image_id else "id unknown"
    return f"{shown} ({digest})" if digest else shown


@dataclass(frozen=True)
class EarlierStepMissed(MissReason):
    """A step before it (in its stage, or in the stage it starts from or copies from) ran: its
    layer is new, so nothing after it can be in the cache. Names the first such step."""

    kind: ClassVar[str] = "earlier_step_missed"
    stage: int = 0
    step: int = 0
    instruction: str = ""
    via: str = ""
    """"" (same stage), "base stage" or "copy --from"."""

    def short(self) -> str:
        return f"after {self.stage}:{self.step}"

    def full(self) -> str:
        how = {"": "", "base stage": " (the stage it starts from)",
               "copy --from": " (in the stage it copies from)"}.get(self.via, f" ({self.via})")
        return (f"an earlier step ran instead of coming from cache{how}: step "
                f"{self.stage}:{self.step} {self.instruction!r}")


@dataclass(frozen=True)
class EarlierBuildStopped(MissReason):
    """The build whose layers the steps before reused never finished this step."""

    kind: ClassVar[str] = "earlier_build_stopped"
    build: int = 0
    outcome: str = ""
    """What happened to this step in that build: "failed", "canceled", or "" (it never got
    there)."""

    def short(self) -> str:
        return "not built before"

    def full(self) -> str:
        if self.outcome:
            return f"in build #{self.build} this step {self.outcome}: it left no layer to reuse"
        return f"build #{self.build} ended before this step: it left no layer to reuse"


@dataclass(frozen=True)
class Unknown(MissReason):
    """Buildah ran the step, and nothing buildcage checks explains it: what was checked."""

    kind: ClassVar[str] = "unknown"
    checked: tuple[str, ...] = ()
    build: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "checked", tuple(self.checked))

    def short(self) -> str:
        return "unknown"

    def full(self) -> str:
        return "reason unknown; checked: " + "; ".join(self.checked)


REASON_TYPES: dict[str, type[MissReason]] = {
    cls.kind: cls
    for cls in (NoCache, FreshStore, NoEarlierBuild, OtherStore, InstructionChanged,
                BuildArgChanged, FilesChanged, ImageChanged, EarlierStepMissed,
                EarlierBuildStopped, Unknown)
}


def reason_from_dict(data: dict[str, Any]) -> MissReason:
    """A reason from its JSON form (``to_dict``); raises ValueError for an unknown kind."""
    fields_ = dict(data)
    kind = fields_.pop("kind", "")
    cls = REASON_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown cache miss reason {kind!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in fields_.items() if k in known})

