"""Running a BuildPlan in a builder container through podman-py, as a stream of typed events.

The output is read as it comes (see tui.engine.logs for why not through ``follow``) and parsed
once into events; every line arrives, once, in order, the last ones included.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from podman import PodmanClient
from podman.domain.containers import Container
from podman.errors import ImageNotFound

from tui.engine.buildah_output import BuildahOutputParser
from tui.engine.cache_left import CacheLeft, cache_left
from tui.engine.containers import (
    made_by_name,
    remove_container,
    run_once,
    stop_gracefully,
    wait_exit,
)
from tui.engine.events import (
    BaseImages,
    BuildStarted,
    BuildWarning,
    CacheExported,
    Done,
    Event,
    Failed,
    ImageBuilt,
    ImageInfo,
    PhaseDone,
    PushStarted,
    Status,
    Unchanged,
)
from tui.engine.exit_file import EXIT_POLL_S, locate
from tui.engine.image_facts import ImageFacts, read_facts
from tui.engine.layer_reader import keep_after_build
from tui.engine.load import LoadedBefore, LoadError, load_archive, load_from_host_store
from tui.engine.logs import ApiLogPoller, LogFileTail
from tui.engine.orphans import claim_store, collect_on_start, owned, store_busy
from tui.engine.paths import open_lock, store_lock_path
from tui.engine.plan import BuildPlan, Phase
from tui.engine.planner import secret_looking_args
from tui.engine.profiles import HOST_STORE
from tui.engine.renderings import create_kwargs
from tui.engine.store_files import read_store_facts
from tui.engine.store_heal import heal
from tui.engine.stores import (
    HostState,
    podman_secrets,
    prepare,
    release,
    release_pins,
    store_image_names,
    store_root,
    stray_working_containers,
)
from tui.engine.transfer import copy_in, copy_out, outputs
from tui.engine.unchanged import Candidate, replay, verify

EventSink = Callable[[Event], None]


def service_gone(exc: BaseException) -> bool:
    """Whether an API error means nobody answers on the socket (not that podman said no)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ConnectionError, OSError)) or "operation failed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class _Ahead:
    """The next phase's container, being made while the current phase runs."""

    name: str
    thread: threading.Thread
    made: list[Container] = field(default_factory=list)


class StoreVolumeError(RuntimeError):
    """The fresh store's volume, whose records a build with nothing to publish reads here,
    cannot be found: the build fails saying so."""


class BuildRunner:
    """Runs one plan. ``run()`` blocks and returns the Done event; ``cancel()`` is thread-safe."""

    makes_ahead = True
    """Create (and, on this machine, init) the next phase's container while the current one
    runs: a create costs 0.17-0.2 s of the service (measured: README "Session builders"), an
    init most of a start's, paid during the phase instead of between two. Not for a session's
    kept containers, nor a Pod (played whole)."""

    def __init__(self, client: PodmanClient, plan: BuildPlan, on_event: EventSink, *,
                 host_state: HostState | None = None,
                 idmap: dict[str, list[str]] | None = None) -> None:
        """``host_state``: what ``stores.prepare`` made for the plan already, owned by the
        caller, who releases it (a debug shell keeps a fresh store after its rebuild).
        ``idmap``: the user namespace mapping every phase takes, held by the caller (else the
        first phase's automatic one)."""
        self.client = client
        self.plan = owned(plan)
        """The plan with this process as owner: all it makes is labelled so (see orphans)."""
        self.on_event = on_event
        self.parser = BuildahOutputParser()
        self.poll_interval = 0.1
        """Seconds between reads of new output while the builder runs (when none was new)."""
        self.use_log_file = True
        """Read the k8s-file log directly when podman is local (exact and cheap)."""
        self.use_exit_file = True
        """Take a phase's exit from conmon's exit file when podman is local (tui.engine.exit_file:
        about 50 ms sooner than podman's wait)."""
        self._collected: Callable[[], None] = lambda: None
        """Waits for the orphan collection started with the build (``_collect_beside``)."""
        self._exited: set[str] = set()
        """Ids of the containers whose exit this build saw (their phase is over)."""
        self.service_grace = 300.0
        """Seconds to wait for a podman service that went away mid-build to come back."""
        self.stop_timeout = 15.0
        """Seconds Buildah gets to clean up after SIGTERM before the builder is killed."""
        self._container_started = 0.0
        self._canceled = threading.Event()
        self._starting = False
        """A phase container's start request is in flight (``cancel`` leaves it to the start)."""
        self._container: Container | None = None
        """The phase container running now (the one cancel stops)."""
        self._containers: list[Container] = []
        """Every phase container made so far, removed when the build ends."""
        self._idmap: dict[str, list[str]] | None = idmap
        self._host_state = host_state
        self._upcoming: Phase | None = None
        """The phase after the one running now (``makes_ahead``)."""
        self._ahead: _Ahead | None = None
        self._announced = False
        self._held_failure: Failed | None = None
        self._lock = threading.Lock()
        self.facts = ImageFacts()
        self.loaded_before: LoadedBefore = lambda tag, image_id: False
        """The tag rule's memory (history): ``Engine.runner`` sets it."""
        self._loaded = ""
        """The host tag the image was loaded under (``--load``)."""
        self._load_failure: Failed | None = None
        self.unchanged: Callable[[], Candidate | None] | None = None
        """Whether this build would repeat the last one in its store step for step
        (tui.engine.unchanged.find, with the engine's reading of history and the context):
        ``Engine.runner`` sets it where an unchanged build may start no container."""
        self._counts: tuple[int, int] | None = None
        """(steps, cache hits) of an unchanged build, whose parser saw no line."""

    def cancel(self) -> None:
        """Asks the build to stop; returns at once (the stop itself runs on its own thread).
        A container being started is stopped by the start, once it runs (``_start_builder``):
        one stop each, so Buildah gets its SIGTERM once."""
        with self._lock:
            self._canceled.set()
            container = None if self._starting else self._container
        if container is not None:
            self._stop_in_background(container)

    def _stop_in_background(self, container: Container) -> None:
        threading.Thread(target=stop_gracefully, args=(container, self.stop_timeout),
                         daemon=True).start()

    @property
    def canceled(self) -> bool:
        return self._canceled.is_set()

    def run(self) -> Done:
        started = time.time()
        state = None
        error: Failed | None = None
        exit_code = -1
        store_lock = None
        self._collected = self._collect_beside()  # what dead buildcage processes left
        try:
            self._sweep_sessions()
            store_lock = self._lock_store()
            if store_lock is not None and not self.canceled:
                self._heal_store()
            self._collected()
            if self._unchanged_build():
                exit_code = 0
            else:
                state = self._prepare()
                if not self.canceled:
                    exit_code = self._run_phases(state)
        except ImageNotFound:
            error = Failed(message=f"builder image {self.plan.builder_image} not found: run "
                                   "provision/provision.sh (or `buildcage doctor`)")
        except Exception as exc:  # noqa: BLE001 - podman gone mid-build, API errors: report, then clean up
            error = Failed(message=f"{type(exc).__name__}: {exc}")
        finally:
            self._collected()
            self._take_ahead(None)  # a container made ahead is in the list clean-up removes
            # Sweep before clean-up: the sweeper needs the per-build files still in place.
            left = self._safe_sweep() if exit_code != 0 and self._container_started else []
            left += self._cleanup(state)
            if store_lock is not None:
                store_lock.close()  # releases the flock
        if error is None and not self.canceled and exit_code == 0 and not self.facts.image_id:
            # Never "succeeded" without an image: a builder that did not run exits 0 too.
            error = Failed(message="the builder exited without building an image")
        if error is None and not self.canceled and exit_code == 0:
            error = self._load_failure  # asked for --load and not loaded: as a failed push
        if error is not None and not self.canceled:
            self._emit(error)
        elif not self.canceled:
            if exit_code != 0 and self._held_failure is not None:
                self._emit(self._held_failure)
            for event in self.parser.finish(exit_code, time.time()):
                self._emit(event)
        if left:
            self._emit(Failed(message="could not remove: " + "; ".join(left)))
        status: Status
        if self.canceled:
            status = "canceled"
        elif error is None and exit_code == 0 and not left:
            status = "succeeded"
        else:
            status = "failed"
        pushed = self.facts.pushed
        steps_total, cache_hits = self._counts or (self.parser.steps_total,
                                                   self.parser.cache_hits)
        done = Done(
            status=status, image_id=self.facts.image_id,
            duration_s=round(time.time() - started, 3),
            steps_total=steps_total, cache_hits=cache_hits,
            pushed=f"{pushed.ref}@{pushed.digest}" if pushed else "",
            loaded=self._loaded,
        )
        self._emit(done)
        return done

    def _collect_beside(self) -> Callable[[], None]:
        """``collect_on_start`` in a thread beside the sweep of sessions and a session's
        checks (its five list calls were 7.5 ms of an unchanged build's 19 here); waited for
        before the store's flock (``_lock_store``: an orphan on this very store is collected
        under that flock, which the collection takes itself). The function returned waits for
        it and says what it said, once, on this thread (events stay in order)."""
        said: list[str] = []
        thread = threading.Thread(target=collect_on_start, args=(self.client, said.append),
                                  daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: collected here, first
            collect_on_start(self.client, self._warn)
            return lambda: None
        done = False

        def collected() -> None:
            nonlocal done
            if done:
                return
            thread.join()
            done = True
            for message in said:
                self._warn(message)

        return collected

    def _sweep_sessions(self) -> None:
        """Session builders of this data directory over their idle timeout, or whose build's
        process is gone (tui.engine.session_builder.sweep); never one a build runs in."""
        from tui.engine.session_builder import sweep
        from tui.engine.session_files import sessions_dir

        if self.plan.remote or not sessions_dir(self.plan.data_dir).is_dir():
            return
        try:
            removed, left = sweep(self.client, self.plan.data_dir, stop_timeout=self.stop_timeout)
        except Exception as exc:  # noqa: BLE001 - the build itself may still work: say it
            self._warn(f"could not look for session builders to remove: {exc}")
            return
        for line in removed:
            self._warn(f"removed {line}")
        for line in left:
            self._warn(f"could not remove {line}")

    def _prepare(self) -> HostState:
        """What the build needs on the host before its first container (``stores.prepare``),
        unless the caller made it."""
        return self._host_state or prepare(self.client, self.plan,
                                           make_secrets=self._make_secrets)

    @property
    def files_plan(self) -> BuildPlan:
        """The plan whose host directories the publish phase writes (facts, the --load
        archive): the build's own; a session builder's are the session's."""
        return self.plan

    @staticmethod
    def _make_secrets(client, plan: BuildPlan) -> list[str]:
        return podman_secrets(client, plan)

    def _run_phases(self, state: HostState) -> int:
        """Fetch (trusted, host network), build (untrusted, no network), publish (trusted):
        each a container on the same store; stops at the first that fails."""
        phases = self._phases(state)
        idle: tuple[CacheLeft, str] | None = None
        for index, spec in enumerate(phases):
            if self.canceled:
                return -1
            self._upcoming = phases[index + 1] if index + 1 < len(phases) else None
            if spec.name == "publish":
                for event in self.parser.finish(0, time.time()):  # the build's last step
                    self._emit(event)
                idle = self._idle_publish()
                if idle is not None:
                    break  # its container (made ahead, unused) goes with the others
                code = self._publish(spec)
            else:
                began = time.monotonic()
                code = self._run_container(spec)
                if not self.canceled and spec.name != "debug":  # (a debug shell: no phase)
                    self._emit(PhaseDone(phase=spec.name, exit_code=code,
                                         duration_s=round(time.monotonic() - began, 3)))
            if code != 0:
                return code
        if (idle is not None or self._reads_facts_here()) and not self.canceled:
            for event in self.parser.finish(0, time.time()):  # the build's last step
                self._emit(event)
            root = idle[1] if idle is not None else self._store_root()
            facts = read_store_facts(self.plan, state.pinned_facts, root)
            if not facts.image_id and not self.canceled:
                # The records gave no image: beyond store_files' bounds (16 MiB of image
                # records: a host store of about 10,000 images), or none was built. The
                # publish phase looks, as it did before these were read here.
                return self._publish(self.plan.phase("publish"))
            if idle is not None:
                facts = dataclasses.replace(facts, cache=CacheExported(
                    repo=self.plan.cache_repo, images=idle[0].used, pushed=0))
            self._take_facts(facts)
            self._keep_layers(root)
        return 0

    def _publish(self, spec: Phase) -> int:
        """The trusted publish phase: the image's records into the facts, the push, the
        ``--load`` archive, the registry cache; then the facts read and the load done."""
        self._own_facts_dir()
        self.parser.begin_push()
        push = self.plan.push_argv()
        if push is not None:
            self._emit(PushStarted(ref=push[0]))
        began = time.monotonic()
        code = self._run_container(spec)
        if self.canceled:
            return code
        self._emit(PhaseDone(phase="publish", exit_code=code,
                             duration_s=round(time.monotonic() - began, 3)))
        # The image's record is written before the push: a failed push still says which
        # image the store holds (its Pushed fact is simply missing).
        self._read_facts()
        if code == 0:
            self._keep_layers()
        if code == 0 and self.plan.load and self.facts.image_id:
            self._load()
        return code

    def _idle_publish(self) -> tuple[CacheLeft, str] | None:
        """What the store (at the root given with it) says of the registry cache when the
        publish phase would only update it and there is nothing to update
        (tui.engine.cache_left); None: run the phase."""
        if not self.plan.publish_may_be_idle or self.canceled:
            return None
        try:
            root = self._store_root()
        except StoreVolumeError:
            return None  # the phase runs, and says what it finds
        if root is None:
            return None
        left = cache_left(self.plan, root)
        return (left, root) if left is not None and left.nothing else None

    def _store_root(self) -> str | None:
        """The c/storage root of a fresh store's volume on this host, where podman says it is
        mounted (the builder has it at /var/lib/containers), or of the plan's project
        directory. Everything below it is read as hostile (tui.engine.store_files)."""
        if self.plan.profile.store != "fresh":
            root = store_root(self.plan)
            return None if root is None else str(root)
        try:
            mount = self.client.volumes.get(self.plan.store_volume).attrs.get("Mountpoint")
        except Exception as exc:  # noqa: BLE001 - podman gone: the build's failure says so
            raise StoreVolumeError(f"the fresh store's volume {self.plan.store_volume} cannot "
                                   f"be read: {exc}") from None
        if not isinstance(mount, str) or not os.path.isabs(mount):
            raise StoreVolumeError(f"podman names no mount point for the fresh store's volume "
                                   f"{self.plan.store_volume}")
        return os.path.join(mount, "storage")

    def _reads_facts_here(self) -> bool:
        """No publish container: this process reads the store (``BuildPlan.facts_read_here``)."""
        return self.plan.facts_read_here

    def _phases(self, state: HostState) -> list[Phase]:
        """The phases to run: no fetch container when the store already holds every image, no
        publish container when its only work is read here."""
        phases = self.plan.phases()
        present = set(state.pinned_images) | set(store_image_names(self.plan))
        if all(ref in present for ref in self.plan.fetch_refs) and not self.plan.pulls_cache:
            phases = [p for p in phases if p.name != "fetch"]
        if self._reads_facts_here():
            phases = [p for p in phases if p.name != "publish"]
        return phases

    def _own_facts_dir(self) -> None:
        """A user-namespaced publish phase writes the facts (and the --load archive) as its
        root, an unprivileged host uid: the private, per-build directories go to that uid."""
        if self._idmap is None or self.plan.remote:
            return  # (a remote builder's files are copied back by this process)
        uid, gid = (int(m[0].split(":")[1]) for m in (self._idmap["UidMap"],
                                                      self._idmap["GidMap"]))
        os.chown(self.files_plan.facts_dir, uid, gid)
        if self.plan.writes_archive:
            os.chown(self.files_plan.output_dir, uid, gid)

    def _load(self) -> None:
        """``--load``, after the publish phase (tui.engine.load): the image into the host's
        store, or the reason it is not (which fails the build, as a failed push does)."""
        try:
            if self.plan.writes_archive:
                loaded = load_archive(self.client, self.files_plan, self.facts.image_id,
                                      loaded_before=self.loaded_before,
                                      canceled=lambda: self.canceled)
            else:
                loaded = load_from_host_store(self.client, self.plan, self.facts.image_id)
        except LoadError as exc:
            if exc.refused is not None:
                self._emit(exc.refused)
            self._load_failure = Failed(message=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - podman's API refused the archive, say why
            self._load_failure = Failed(message=f"--load: {type(exc).__name__}: {exc}")
            return
        if loaded is not None:
            self._loaded = loaded.tag
            self._emit(loaded)

    def _read_facts(self) -> None:
        """The image and the push as the trusted publish phase recorded them: out of band,
        never from what the build printed."""
        self._take_facts(read_facts(self.files_plan))

    def _take_facts(self, facts: ImageFacts) -> None:
        self.facts = facts
        if facts.image_id:
            self._emit(ImageBuilt(image_id=facts.image_id))
        if facts.layers is not None:
            self._emit(ImageInfo(layers=facts.layers, overlay=facts.overlay))
        if facts.pushed is not None:
            self._emit(facts.pushed)
        if facts.bases is not None:
            self._emit(BaseImages(images=facts.bases))
        if facts.cache is not None:
            self._emit(facts.cache)

    def _keep_layers(self, root: str | None = None) -> None:
        """Where the image was built, for ``buildcage layers`` later, and the report of the
        layers when the store goes with the build: from the layout the publish phase wrote, or
        from the store itself (``root``) when there was none (layer_reader)."""
        if self.facts.image_id:
            problem = keep_after_build(self.files_plan, self.facts.image_id, root,
                                       canceled=lambda: self.canceled)
            if problem:
                self._warn(problem)

    def _start_builder(self, spec: Phase):
        """Creates and starts one phase's container; None when canceled in between."""
        container = self._take_ahead(spec) or self._create(spec)
        with self._lock:
            self._container = container
            if container not in self._containers:
                self._containers.append(container)
        if self.plan.profile.userns != "host" and self._idmap is None:
            # Later phases get this container's mapping, so they own the store alike. The
            # container stays (stopped) until the build ends: podman's automatic allocation
            # then hands that range to nobody else meanwhile.
            container.reload()
            maps = container.attrs.get("HostConfig", {}).get("IDMappings") or {}
            if maps.get("UidMap") and maps.get("GidMap"):
                self._idmap = {"UidMap": maps["UidMap"], "GidMap": maps["GidMap"]}
        copy_in(container, spec.mounts)  # a remote service: this machine's files, copied
        with self._lock:
            if self.canceled:
                return None
            self._starting = True
        try:
            container.start()
        finally:
            with self._lock:
                self._starting = False
                stop = self.canceled
        if stop:
            # Canceled while the start request was in flight: a container not yet running has
            # nothing to stop, so cancel() left it to this, now it runs; the phase's wait below
            # sees it end, as after any cancel.
            self._stop_in_background(container)
        return container

    def _create(self, spec: Phase) -> Container:
        """The phase's container, made for this build."""
        kwargs = create_kwargs(self.plan, spec, self._idmap)
        try:
            return self.client.containers.create(**kwargs)
        except Exception:
            # podman-py's create is a POST, then a GET of what it made: when the GET fails the
            # container exists. Found by its name, it goes with the build's others.
            self._adopt(str(kwargs.get("name") or ""))
            raise

    def _adopt(self, name: str) -> None:
        container = made_by_name(self.client, name)  # (else gc finds it by its owner label)
        if container is not None:
            with self._lock:
                if all(c.id != container.id for c in self._containers):
                    self._containers.append(container)

    def _make_ahead(self) -> None:
        """Starts making the upcoming phase's container (after this phase's container exists:
        a user-namespaced build's mapping is read from the first)."""
        spec = self._upcoming
        if not self.makes_ahead or spec is None or self._ahead is not None or self.canceled:
            return
        made: list[Container] = []

        def make() -> None:
            try:
                container = self._create(spec)
            except Exception:  # noqa: BLE001 - made again when it is needed, and fails there
                return
            with self._lock:
                self._containers.append(container)  # removed with the others, used or not
            # A remote one gets this machine's files first (copy_in). A mount podman chowns
            # (``U``: an oci: folder, a snapshot) is chowned at init: not while the phase
            # before, maybe the untrusted one, runs.
            if not self.plan.remote and not any(m.chown for m in spec.mounts):
                try:
                    # A start's work but the process: namespaces, mounts, the runtime's
                    # container (a start 91 ms, after an init 17 ms, measured here). Nothing of
                    # the image runs before start().
                    container.init()
                except Exception:  # noqa: BLE001, S110 - start() inits it again, and says why it cannot
                    pass
            made.append(container)

        thread = threading.Thread(target=make, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the phase makes its own, as before
            return
        self._ahead = _Ahead(spec.name, thread, made)

    def _take_ahead(self, spec: Phase | None) -> Container | None:
        """The container made ahead for ``spec``, once made; None if there is none (or it
        could not be made). ``spec`` None: only waits for a make in progress."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        ahead.thread.join()
        if spec is None or ahead.name != spec.name:
            return None
        if not ahead.made:  # its inspect failed, it was adopted by its name (``_create``):
            with self._lock:  # made again under that name, podman would refuse it (409)
                return next((c for c in self._containers
                             if getattr(c, "name", None) == spec.container_name), None)
        return ahead.made[0]

    def _remove_builder(self, container) -> str:
        """Removes the builder; returns "" or why it could not."""
        return remove_container(container)

    def _run_container(self, spec: Phase) -> int:
        if not self._container_started:
            self._container_started = time.time()
        since = time.time_ns()
        container = self._start_builder(spec)
        if container is None:
            return -1
        self._make_ahead()
        self._announce(container.id)
        source = self._log_source(container)
        # conmon's exit file says the exit before podman's wait can (tui.engine.exit_file);
        # the wait goes on beside it, for a file that never comes and for a lost service.
        # (Only beside podman's log file, read as often: an API log source would be asked for
        # the output 100 times a second.)
        exit_file = None if self.plan.remote or not self.use_exit_file \
            or not isinstance(source, LogFileTail) \
            else locate(getattr(container, "attrs", {}), container.id, since)
        outcome: list[int | BaseException] = []
        notes: list[str] = []
        lost = threading.Event()
        over = threading.Event()
        waiter = threading.Thread(target=self._wait,
                                  args=(container, outcome, notes, lost, over), daemon=True)
        waiter.start()
        early: int | None = None
        while waiter.is_alive():
            lines = self._read(source)
            self._deliver(lines)
            while notes:  # said by the waiter, emitted here to keep the events in order
                self._emit(BuildWarning(message=notes.pop(0)))
            # (not while the service is away: the rest of the build needs it back first)
            if exit_file is not None and not lost.is_set() \
                    and (early := exit_file.code()) is not None:
                over.set()  # the waiter gives up at its next setback (its answer is not needed)
                break
            if not lines:
                waiter.join(EXIT_POLL_S if exit_file is not None else self.poll_interval)
        while lines := source.finish():  # a piece at a time: memory stays bounded
            self._deliver(lines)
        for note in notes:
            self._emit(BuildWarning(message=note))
        result = early if early is not None else outcome[0] if outcome else -1
        if isinstance(result, int):
            self._exited.add(container.id)
        if isinstance(result, BaseException):
            raise result  # the podman service stayed away, or another API error
        if outputs(spec.mounts) and not self.canceled:
            copy_out(container, spec.mounts)  # a remote service: the facts, an OCI layout
        return result

    def _announce(self, container_id: str) -> None:
        """BuildStarted and what is said before the first step, once per build
        (``container_id`` "": an unchanged build, which starts none)."""
        if self._announced:
            return
        self._announced = True
        self._emit(BuildStarted(build_id=self.plan.build_id, profile=self.plan.profile.name,
                                context=str(self.plan.context), tag=self.plan.tag,
                                container_id=container_id))
        for name in secret_looking_args(self.plan.build_args):
            self._emit(BuildWarning(
                message=f"build argument {name} looks like a secret: build arguments are "
                        f"recorded in the image's history; pass it with "
                        f"--secret id={name},src=FILE and RUN --mount=type=secret,id={name}"))
        if self.plan.cache_note:
            self._emit(BuildWarning(message=self.plan.cache_note))
        if self.plan.profile.store == "fresh" and not self.plan.push:
            self._emit(BuildWarning(message="no push target: the image is deleted with the "
                                            "fresh store when the build ends"))

    def _unchanged_build(self) -> bool:
        """Nothing changed since the last build in this store (tui.engine.unchanged, asked
        through ``unchanged``): its image is the result, its steps are told as cache hits, its
        facts read from the store, and no container runs. False: the build runs."""
        if self.unchanged is None or self.canceled:
            return False
        try:
            candidate = self.unchanged()
            facts = verify(self.plan, candidate) if candidate is not None else None
        except Exception as exc:  # noqa: BLE001 - a fault here must not stop the build: it runs
            self._warn(f"could not tell whether anything changed since the last build "
                       f"({type(exc).__name__}: {exc}): it runs")
            return False
        if candidate is None or facts is None or self.canceled:
            return False
        self._announce("")
        self._emit(Unchanged(build=candidate.build, image_id=candidate.image_id))
        for event in replay(candidate, time.time()):
            self._emit(event)
        self._counts = (candidate.steps_total, candidate.cache_hits)
        self._take_facts(facts)
        self._keep_layers()
        return True

    @staticmethod
    def _read(source: LogFileTail | ApiLogPoller) -> list[str]:
        try:
            return source.read_new()
        except Exception as exc:
            if service_gone(exc):
                return []  # the API poller while the service is away: the waiter decides
            raise

    def _wait(self, container, outcome: list[int | BaseException], notes: list[str],
              lost: threading.Event | None = None, over: threading.Event | None = None) -> None:
        """Waits for the builder to exit. The builder runs on without the API service
        (conmon keeps its output), so a lost service is waited for, not a failed build
        (``lost`` is set meanwhile: what comes after the phase needs the service). ``over``:
        the phase ended otherwise (its exit file): no service is waited for any more."""
        lost = lost or threading.Event()
        over = over or threading.Event()
        lost_at: float | None = None
        while True:
            try:
                code = wait_exit(container)
            except Exception as exc:  # noqa: BLE001 - handed to the runner thread, which raises it
                if not service_gone(exc) or over.is_set():
                    outcome.append(exc)
                    return
                if lost_at is None:
                    lost_at = time.monotonic()
                    lost.set()
                    notes.append(f"lost the podman service; the build goes on in its container, "
                                 f"waiting up to {self.service_grace:.0f}s for the service")
                elif time.monotonic() - lost_at > self.service_grace:
                    outcome.append(exc)
                    return
                time.sleep(1.0)
                continue
            if lost_at is not None:
                notes.append("the podman service answers again")
            outcome.append(code)
            lost.clear()
            return

    def _log_source(self, container) -> LogFileTail | ApiLogPoller:
        container.reload()
        log = container.attrs.get("HostConfig", {}).get("LogConfig", {})
        path = Path(log.get("Path") or "/nonexistent")
        if self.use_log_file and not self.plan.remote and log.get("Type") == "k8s-file" \
                and os.access(path, os.R_OK):
            return LogFileTail(path)
        return ApiLogPoller(container)

    def _deliver(self, lines: list[str]) -> None:
        for event in self.parser.feed_all(lines, time.time()):  # one read, one arrival
            if isinstance(event, Failed):
                # An "Error: ..." line is Buildah's, or a RUN step's imitation: it is shown
                # only once the phase's exit code says it failed (and not on a cancel).
                self._held_failure = self._held_failure or event
                continue
            self._emit(event)

    def _lock_store(self):
        """One build at a time per persistent buildcage store: the sweep after a cancel must
        not take another build's working container for a stray one."""
        self._collected()  # (an orphan on this store is collected under this flock)
        if self.plan.store_dir is None:
            return None
        self.plan.store_dir.mkdir(parents=True, exist_ok=True)
        lock = open_lock(store_lock_path(self.plan.store_dir))
        told = False
        while not self.canceled:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # A builder whose process died lost its flock but may still run: wait for it
                # (or collect it, an orphan) before this build takes the store.
                claim_store(self.client, self.plan, lambda: self.canceled, self._warn)
                return lock
            except BlockingIOError:
                if not told:
                    self._emit(BuildWarning(message=f"waiting for another build using the "
                                                    f"store of project {self.plan.project}"))
                    told = True
                time.sleep(0.2)
        return lock

    def _heal_store(self) -> None:
        """Drops the project store's image records whose top layer only an additional store
        held and no longer does (``tui.engine.store_heal``), under the store's flock."""
        root = store_root(self.plan)
        additional = [Path(HOST_STORE)] if self.plan.profile.host_store_ro else []
        additional += [Path(extra) for extra in self.plan.profile.extra_stores]
        if root is None or not additional:
            return  # only a store that sees other stores records their layers
        for message in heal(root, additional).warnings():
            self._warn(message)

    def _safe_sweep(self) -> list[str]:
        """``_sweep``, whatever it meets: it runs before the clean-up and the store lock's
        release, which must happen all the same."""
        try:
            return self._sweep()
        except Exception as exc:  # noqa: BLE001 - a store it could not read, podman trouble
            return [f"Buildah working containers in the store ({type(exc).__name__}: {exc})"]

    def _sweep(self) -> list[str]:
        """Removes working containers a stopped Buildah left in a persistent store, with a
        short-lived builder on the same mounts running ``buildah rm``."""
        root = store_root(self.plan)
        ids = stray_working_containers(root, self._container_started - 1) if root else []
        if root is None or not ids:
            return []
        busy = store_busy(self.client, root, {self.plan.build_id})
        if busy:  # another builder's working containers look the same: leave them all
            return [f"{len(ids)} Buildah working containers in {root}: not swept, {busy}"]
        kwargs = self._sweeper_kwargs(ids)
        try:
            run_once(self.client, kwargs)
        except Exception as exc:  # noqa: BLE001 - podman gone: say what is left in the store
            return [f"{len(ids)} Buildah working containers in {root} ({exc})"]
        left = stray_working_containers(root, self._container_started - 1)
        return [f"Buildah working containers {', '.join(i[:12] for i in left)} in {root}"] \
            if left else []

    def _sweeper_kwargs(self, ids: list[str]) -> dict:
        """A build-phase container on the build's store that removes working containers."""
        kwargs = create_kwargs(self.plan, "build", self._idmap)
        kwargs.update(command=self.plan.on_store(["buildah", "rm", *ids]),
                      name=f"{self.plan.container_name}-sweep")
        return kwargs

    def _emit(self, event: Event) -> None:
        self.on_event(event)

    def _warn(self, message: str) -> None:
        self._emit(BuildWarning(message=message))

    def _cleanup(self, state) -> list[str]:
        left: list[str] = []
        with self._lock:
            containers, self._containers, self._container = self._containers, [], None
        ours = state is not None and state is not self._host_state  # else the caller's
        # At once, the pins too: each removal is a round trip of 0.1-0.26 s to the service (an
        # isolated build's three took 0.77 s one after the other, at load 4). The rest of the
        # state (secrets, the fresh volume) goes after the containers that use it.
        pinned: Future[list[str]] | None = None
        problems: list[str] | None = None
        if len(containers) + bool(ours and state.pins) > 1:
            try:
                with ThreadPoolExecutor(max_workers=len(containers) + 1) as pool:
                    pinned = pool.submit(release_pins, self.client, state) if ours else None
                    problems = list(pool.map(self._remove_builder, containers))
            except RuntimeError:  # the interpreter is shutting down: no new threads
                problems = None  # (a removal done meanwhile is "" the second time)
        if problems is None:
            problems = [self._remove_builder(c) for c in containers]
        for container, problem in zip(containers, problems, strict=True):
            if problem:
                left.append(f"container {container.name} ({problem})")
        if ours:  # the pins' removal, when it ran beside (the pool waited for it), says first
            left += (pinned.result() if pinned is not None else []) + release(self.client, state)
        return left
