"""Command line: `buildcage [DIR]` starts the TUI (its picker in DIR); build, plan, profiles,
doctor, gc, history, why, layers, debug and session are headless and use the same engine.

Exit codes: 0 success, 1 a failed build (or failed checks), 2 bad input (a UserError, with a
message saying what to change), 3 ``layers --max-waste``: the image wastes more than allowed,
130 cancelled (Ctrl-C, SIGTERM, SIGHUP), 141 output closed early (a pipe into ``head``). No
condition a user caused ends in a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library and light modules at import time: a Ctrl-C in the first
# milliseconds must land in main(), where it is a cancel, not in an import.
from tui.engine.errors import UserError
from tui.engine.signals import take_over
from tui.engine.text import visible
from tui.interrupts import (
    APP_SIGNALS,
    CANCEL_SIGNALS,
    Interrupts,
    detach_from_terminal,
)

if TYPE_CHECKING:
    from tui.engine.request import BuildRequest

EXIT_FAILED, EXIT_USAGE, EXIT_CANCELED, EXIT_PIPE = 1, 2, 130, 141
EXIT_WASTE = 3
"""``buildcage layers --max-waste``: the image wastes more than the limit (a CI gate)."""


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("context", help="build context directory")
    p.add_argument("-f", "--file", help="Containerfile (default: CONTEXT/Containerfile)")
    p.add_argument("--profile", help="isolation profile (default: host-ro)")
    p.add_argument("--tag", help="image name (default: localhost/buildcage/<context>:latest)")
    p.add_argument("--push", default="", help="push target: HOST[:PORT]/REPO:TAG or oci:/DIR[:TAG]")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                   help="a build argument (recorded in the image's history: use --secret "
                        "for secrets)")
    p.add_argument("--secret", action="append", default=[], metavar="id=NAME,src=FILE",
                   help="a file the build reads with RUN --mount=type=secret,id=NAME; never "
                        "in the image, history, logs or a command line")
    p.add_argument("--target", default="", help="stage to build")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--project", help="project name for per-project stores")
    p.add_argument("--allow-host-rw", action="store_true",
                   help="confirm a profile that can write the host's image store (host-rw)")
    p.add_argument("--allow-unsafe-profile", action="store_true",
                   help="confirm a user profile's other risks (extra capabilities, SELinux off, "
                        "a store that exposes host directories or images)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="buildcage", description=__doc__)
    sub = top.add_subparsers(dest="verb")
    build = sub.add_parser("build", help="build headless, printing progress or JSON events")
    _plan_options(build)
    build.add_argument("--json", action="store_true", help="one JSON object per event")
    build.add_argument("-q", "--quiet", action="store_true", help="no Buildah output lines")
    build.add_argument("--on", choices=["local", "kube"], default="local",
                       help="run as a plain container (local) or as the plan's Kubernetes Pod, "
                            "played with podman kube play (kube)")
    build.add_argument("--load", action="store_true",
                       help="put the image into this machine's podman store afterwards, so "
                            "`podman run TAG` works at once (refuses to move a tag that names "
                            "another image there)")
    build.add_argument("--load-overwrite", action="store_true",
                       help="--load, moving the tag even when it names another image")
    build.add_argument("--session", action="store_true",
                       help="build in this profile and project's session builder (its phase "
                            "containers kept, stopped, between builds, each build starting "
                            "them afresh; made when none fits; removed after --idle-timeout "
                            "by the next buildcage command, or by `buildcage session stop`)")
    build.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                       help="with --session: how long after its last build a session goes "
                            "(default 600)")
    session = sub.add_parser("session", help="session builders: list them, or remove them")
    session.add_argument("action", choices=["status", "stop"])
    plan = sub.add_parser("plan", help="print the build as podman run, Kubernetes or JSON")
    _plan_options(plan)
    plan.add_argument("--format", choices=["podman", "kube", "json"], default="podman")
    profiles = sub.add_parser("profiles", help="profiles with facts checked on real containers")
    profiles.add_argument("--json", action="store_true")
    sub.add_parser("doctor", help="check this machine, with fixes")
    gc = sub.add_parser("gc", help="remove containers, pods, volumes and secrets left by "
                                   "buildcage processes that are gone (killed, terminal closed)")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    layers = sub.add_parser("layers", help="what each layer of an image holds, and the bytes "
                                           "it wastes (dive's measures)")
    layers.add_argument("image", nargs="?", default="",
                        help="image id or name (default: the last successful build)")
    layers.add_argument("--last", action="store_true", help="the last successful build")
    layers.add_argument("--json", action="store_true", help="the whole report as JSON")
    layers.add_argument("--max-waste", default="", metavar="BYTES|PERCENT",
                        help=f"exit {EXIT_WASTE} when more is wasted: bytes (6000, 6kB, 1.5MiB) "
                             "or a percent of what the layers above the first add (10%%)")
    layers.add_argument("--profile", default="", help="whose store to read an image from "
                                                      "(default: the build's, or the config's)")
    layers.add_argument("--project", default="", help="which project's store (default: the "
                                                      "build's, or this directory's)")
    layers.add_argument("--all", action="store_true", help="every changed path, not the "
                                                           "largest 20 of each layer")
    debug = sub.add_parser("debug", help="a shell in the state before the step where a build "
                                         "failed, under the build's isolation")
    debug.add_argument("context", nargs="?",
                       help="the last failed build of this context (default: --last)")
    debug.add_argument("--last", action="store_true",
                       help="the last build that failed in a step, of any context")
    debug.add_argument("--secret", action="append", default=[], metavar="id=NAME,src=FILE",
                       help="the build's --secret inputs again, when the shell rebuilds "
                            "(a fresh store kept nothing); never given to the shell itself")
    debug.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                       help="the build's secret-looking build arguments again (buildcage "
                            "keeps no value of one)")
    debug.add_argument("--allow-host-rw", action="store_true",
                       help="confirm a profile that can write the host's image store (host-rw)")
    debug.add_argument("--allow-unsafe-profile", action="store_true",
                       help="confirm a user profile's other risks")
    history = sub.add_parser("history", help="recent builds")
    history.add_argument("--json", action="store_true")
    history.add_argument("-n", type=int, default=20)
    why = sub.add_parser("why", help="why the steps of the last build of a context ran "
                                     "instead of coming from the cache")
    why.add_argument("context", nargs="?",
                     help="build context (default: the last build in history)")
    why.add_argument("--profile", help="the last build with this profile")
    why.add_argument("--project", help="the last build in this project's store")
    why.add_argument("--build", type=int, metavar="ID", help="this build of `buildcage history`")
    why.add_argument("--json", action="store_true")
    for command in sub.choices.values():  # its parser tells a bad option with its usage
        command.set_defaults(command_parser=command)
    return top


def _request(args: argparse.Namespace) -> BuildRequest:
    from tui.engine.planner import parse_build_args, parse_secrets
    from tui.engine.request import BuildRequest

    return BuildRequest(
        context=Path(args.context), profile=args.profile or "", containerfile=args.file or "",
        tag=args.tag or "", push=args.push, build_args=parse_build_args(args.build_arg),
        secrets=parse_secrets(args.secret), target_stage=args.target,
        no_cache=args.no_cache, project=args.project or "", on=getattr(args, "on", "local"),
        load=getattr(args, "load", False) or getattr(args, "load_overwrite", False),
        load_overwrite=getattr(args, "load_overwrite", False),
        session=getattr(args, "session", False),
    )


def _confirmed(args: argparse.Namespace) -> frozenset[str]:
    """The kinds of profile risk the command line confirms (tui.engine.profiles.CONFIRM_FLAGS)."""
    return frozenset(kind for kind, given in (("host-rw", args.allow_host_rw),
                                              ("unsafe", args.allow_unsafe_profile)) if given)


def cmd_build(engine, args: argparse.Namespace, interrupts: Interrupts | None = None) -> int:
    from tui.cli_output import HumanPrinter, JsonPrinter

    printer = JsonPrinter() if args.json else HumanPrinter(quiet=args.quiet)
    # Until the runner exists, Ctrl-C, SIGTERM and SIGHUP raise (main's handlers): nothing is
    # made yet, and a blocking call (a podman service that does not answer) must not hold
    # them. From then on they cancel: the runner removes the containers, store and pins.
    prepared = engine.prepare(_request(args), confirmed=_confirmed(args))
    runner = engine.start(prepared, printer)
    interrupts = interrupts or Interrupts()
    with interrupts.installed(CANCEL_SIGNALS):
        interrupts.on_cancel(runner.cancel)
        done = runner.run()
    if done.status == "canceled":
        return EXIT_CANCELED
    return 0 if done.status == "succeeded" else EXIT_FAILED


def cmd_debug(engine, args: argparse.Namespace, interrupts: Interrupts | None = None) -> int:
    """A shell where the last failed build (of a context) failed; exits with the shell's
    status. Signals end the shell or the rebuild, and everything made is removed."""
    from tui.cli_output import HumanPrinter
    from tui.engine.debug_shell import DebugCanceled
    from tui.engine.planner import parse_build_args, parse_secrets

    if args.context and args.last:
        raise UserError("debug takes a context or --last, not both")
    record = engine.failure(context=Path(args.context) if args.context else None)

    def note(text: str) -> None:
        print(f"buildcage: {visible(text)}", file=sys.stderr, flush=True)

    session = engine.debug(record, secrets=parse_secrets(args.secret),
                           build_args=parse_build_args(args.build_arg),
                           confirmed=_confirmed(args), on_event=HumanPrinter(quiet=True),
                           on_note=note)
    note(f"opening a shell where build {record.build_id} of {record.context} failed "
         f"({record.failed.where}, profile {record.profile}); session {session.plan.build_id}")
    interrupts = interrupts or Interrupts()
    code = EXIT_CANCELED
    try:
        with interrupts.installed(CANCEL_SIGNALS):
            interrupts.on_cancel(session.cancel)
            try:
                session.prepare()
                if session.rebuild_s is not None:
                    note(f"rebuilt in {session.rebuild_s:.1f}s")
                code = session.run_shell()
            except DebugCanceled:
                code = EXIT_CANCELED
            finally:
                left = session.close()
    finally:
        sys.stdout.flush()
    for thing in left:
        note(f"could not remove {thing}")
    if interrupts.canceled:
        return EXIT_CANCELED
    note(f"the shell ended ({code}); its container and working container are removed")
    return code


def cmd_plan(engine, args: argparse.Namespace) -> int:
    from tui.engine.renderings import create_kwargs, kube_manifest, podman_run

    # The same checks as a build, and the files the printed command refers to are written, so
    # it runs as printed; the registry need not answer to print a plan.
    plan = engine.prepare(_request(args), confirmed=_confirmed(args), check_push=False).plan
    # Printed to be run later: the command mounts the context itself, not a snapshot.
    plan = plan.without_snapshot()
    if args.format == "podman":
        from tui.engine.stores import write_secret_files

        write_secret_files(plan)  # private to the user; the printed script removes them
    if args.format == "podman":
        print(podman_run(plan))
    elif args.format == "kube":
        print(kube_manifest(plan), end="")
    else:
        print(json.dumps({"build_id": plan.build_id, "profile": plan.profile.name,
                          "context": str(plan.context), "tag": plan.tag, "push": plan.push,
                          "create_kwargs": create_kwargs(plan)}, indent=2, default=str))
    return 0


def cmd_profiles(engine, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    with tempfile.TemporaryDirectory(prefix="buildcage-probe-") as ctx:
        (Path(ctx) / "Containerfile").write_text("FROM scratch\n")
        rows = []
        for profile in engine.profiles.profiles:
            plan = engine.plan(ctx, profile=profile.name, confirmed=True, project="probe")
            summary = engine.summary(plan)
            rows.append(summary)
    if args.json:
        print(json.dumps([{"name": s.profile.name, "summary": s.profile.summary,
                           "security": asdict(s.security), "speed": asdict(s.speed),
                           "median_s": s.median_s, "facts": s.facts.to_dict()} for s in rows],
                         indent=2))
        return 0
    for s in rows:
        f = s.facts
        print(f"{s.profile.name:10} security {'●' * s.security.score:<5} "
              f"speed {'●' * s.speed.score:<5} {s.profile.summary}")
        print(f"{'':10} host store: {f.host_store}; user namespace: {f.userns}; "
              f"SELinux: {f.selinux}; caps: {len(f.effective_caps)}; "
              f"engine sockets: {', '.join(f.engine_sockets) or 'none'}; "
              f"overlay: {f.overlay or 'unknown'}")
        for reason in s.security.reasons + s.speed.reasons:
            print(f"{'':10} - {reason}")
    return 0


def cmd_doctor(engine, args: argparse.Namespace) -> int:
    from tui.engine.doctor import run_checks

    checks = run_checks(engine.config)
    for c in checks:
        print(f"{'ok' if c.ok else 'FAIL':4}  {c.name:16} {c.detail}")
        if not c.ok:
            print(f"{'':22}fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else EXIT_FAILED


def cmd_gc(engine, args: argparse.Namespace) -> int:
    from tui.engine.orphans import collect, find_orphans

    client = engine.client()
    swept: tuple[list[str], list[str]] = ([], [])
    if not args.dry_run:  # session builders over their idle timeout or whose build is gone
        from tui.engine.config import data_dir
        from tui.engine.session_builder import sweep

        swept = sweep(client, data_dir())
        for line in swept[0]:
            print(f"removed {line}")
        for line in swept[1]:
            print(f"left {line}", file=sys.stderr)
    orphans = find_orphans(client)
    if not orphans:
        if not swept[0]:
            print("nothing to remove: everything buildcage made belongs to a running process")
        return EXIT_FAILED if swept[1] else 0
    report = collect(client, orphans, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for line in report.removed:
        print(f"{verb} {line}")
    for line in report.left:
        print(f"left {line}", file=sys.stderr)
    return EXIT_FAILED if report.left else 0


def cmd_session(engine, args: argparse.Namespace) -> int:
    """``buildcage session status|stop``: this data directory's session builders; ``stop``
    removes every one no build runs in."""
    import time

    from tui.engine.config import data_dir
    from tui.engine.session_builder import read_records, sweep

    data = data_dir()
    if args.action == "stop":
        removed, left = sweep(engine.client(), data, everything=True)
        for line in removed:
            print(f"removed {line}")
        for line in left:
            print(f"left {line}", file=sys.stderr)
        if not removed and not left:
            print("no session builder to remove")
        return EXIT_FAILED if left else 0
    records = read_records(data)
    for record in records:
        print(f"{record.describe()}: made {time.time() - record.created:.0f}s ago, "
              f"idle timeout {record.idle_timeout:.0f}s")
    if not records:
        print("no session builder")
    return 0


def cmd_history(engine, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    records = engine.history.recent(args.n)  # HistoryError: a UserError naming the file
    if args.json:
        print(json.dumps([asdict(r) for r in records], indent=2))
        return 0
    import datetime

    for r in records:
        when = datetime.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S")
        how = "unchanged" if r.unchanged else "cached   "  # unchanged: no container ran
        print(visible(f"{r.id:4} {when} {r.profile:9} {r.status:9} {r.duration_s:7.1f}s "
                      f"{r.cache_hits:2}/{r.steps_total:<2} {how}  {r.context}"))
    return 0


def cmd_why(engine, args: argparse.Namespace) -> int:
    from tui.cli_output import print_why
    from tui.engine.cache_why import why_report

    record = _why_record(engine, args)  # HistoryError / UserError: exit 2, named
    report = why_report(engine.history, record)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_why(report)
    return 0


def _why_record(engine, args: argparse.Namespace):
    from tui.engine.cache_why import profile_store_key
    from tui.engine.planner import project_name

    history = engine.history
    if args.build is not None:
        found = history.get(args.build)
        if found is None:
            raise UserError(f"no build #{args.build} in history (buildcage history lists them)")
        return found
    if args.context is None:
        if args.profile or args.project:
            raise UserError("--profile and --project need a CONTEXT")
        recent = history.recent(1)
        if not recent:
            raise UserError("no build in history yet")
        return recent[0]
    context = Path(args.context).expanduser().resolve()
    store = profile_name = None
    if args.profile or args.project:
        try:
            profile = engine.profiles.get(args.profile or engine.config.default_profile)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        if profile.store == "fresh":  # a store of its own for every build: by profile only
            profile_name = profile.name
        else:
            remote = engine.config.podman_url if engine.remote else ""
            store = profile_store_key(profile, args.project or project_name(context), remote)
    found = history.last_build(str(context), store=store, profile=profile_name)
    if found is None:
        chosen = " with those options" if args.profile or args.project else ""
        raise UserError(f"no build of {context} in history{chosen}")
    return found



def cmd_layers(engine, args: argparse.Namespace) -> int:
    from tui.cli_layers import print_report, waste_message
    from tui.engine.layers import parse_max_waste

    limit = parse_max_waste(args.max_waste) if args.max_waste else None  # before any podman
    source = engine.layer_source(args.image, last=args.last or not args.image,
                                 profile=args.profile, project=args.project)
    report = engine.layers(source)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, limit=None if args.all else 20)
    if limit is not None and limit.exceeded(wasted_bytes=report.wasted_bytes,
                                            wasted_percent=report.wasted_percent):
        print(f"buildcage: {waste_message(report, limit)}", file=sys.stderr)
        return EXIT_WASTE
    return 0



VERBS = ("build", "plan", "profiles", "doctor", "gc", "history", "why", "layers", "debug",
         "session")


class Interrupted(BaseException):
    """Ctrl-C (or SIGTERM) before a build took the signal over. Not a KeyboardInterrupt on
    purpose: one that passes through an ``exec`` of a string (every dataclass definition runs
    one while a module imports) makes CPython end the process by SIGINT at exit, whatever
    caught it, and the exit code must be 130."""


def _interrupted(signum: int, frame: object) -> None:
    if signum == signal.SIGHUP:
        detach_from_terminal()  # the terminal is gone: the clean-up must not fail writing to it
    raise Interrupted(signum)


def start_directory(word: str) -> str:
    """``buildcage WORD``: WORD must be a directory to start the TUI in; a word that is not one
    is a mistyped command or a wrong path, said as such (UserError)."""
    path = Path(word).expanduser()
    if path.is_dir():
        return word
    if path.exists():
        raise UserError(f"{word!r} is not a directory (buildcage DIR starts the TUI in DIR)")
    close = difflib.get_close_matches(word, VERBS, n=1)
    if close:
        raise UserError(f"unknown command {word!r} (did you mean {close[0]}?)")
    if os.sep in word or word.startswith((".", "~")):
        raise UserError(f"directory {word!r} does not exist")
    raise UserError(f"unknown command {word!r} (commands: {', '.join(VERBS)}); "
                    f"no directory {word!r} here either")


def _run(argv: list[str], state: dict[str, bool], interrupts: Interrupts) -> int:
    start_dir = None
    if argv and argv[0] not in VERBS and not argv[0].startswith("-"):
        # `buildcage DIR`: the TUI, starting in DIR. Checked before parsing, so that a
        # typo'd verb is not taken for a directory.
        start_dir, argv = start_directory(argv[0]), argv[1:]
    top = parser()
    args, unknown = top.parse_known_args(argv)
    if unknown:  # told with the command's own usage, not the top level's
        getattr(args, "command_parser", top).error(f"unrecognized arguments: {' '.join(unknown)}")
    state["json"] = bool(getattr(args, "json", False)) and args.verb == "build"
    from tui.engine.config import load_config
    from tui.engine.session import Engine

    engine = Engine(load_config())
    if getattr(args, "session", False) is True and args.idle_timeout is not None:
        engine.session_idle_timeout = args.idle_timeout  # (else the Engine's default)
    if args.verb is None:
        from tui.app import run_app

        signal.signal(signal.SIGINT, signal.default_int_handler)  # the TUI's own
        with interrupts.installed(APP_SIGNALS):  # SIGTERM, SIGHUP: the app ends the clean way
            return run_app(engine, start_dir, interrupts)
    if args.verb == "build":
        code = cmd_build(engine, args, interrupts)
    elif args.verb == "debug":
        code = cmd_debug(engine, args, interrupts)
    else:
        handler = {"plan": cmd_plan, "profiles": cmd_profiles, "doctor": cmd_doctor,
                   "gc": cmd_gc, "history": cmd_history, "why": cmd_why,
                   "layers": cmd_layers, "session": cmd_session}[args.verb]
        code = handler(engine, args)
    sys.stdout.flush()  # a closed pipe shows here, inside main, not at interpreter exit
    return code


def main(argv: list[str] | None = None) -> int:
    """The ``buildcage`` command; returns the exit code. The one place the CLI catches a
    UserError (exit 2), a Ctrl-C before the build could take it over (130) and a closed
    stdout (141)."""
    argv = sys.argv[1:] if argv is None else argv
    state = {"json": False}
    previous: dict[int, Any] = {}
    try:
        if threading.current_thread() is threading.main_thread():
            # First thing: until a build (or the TUI) takes them over, Ctrl-C, SIGTERM and
            # SIGHUP end the process through its clean-ups (a probe removes its container).
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                take_over(sig, _interrupted, previous)  # (nohup's SIGHUP stays ignored)
        return _run(argv, state, Interrupts())
    except UserError as exc:
        if state["json"]:
            from tui.cli_output import JsonPrinter

            JsonPrinter().error(str(exc))
        else:
            print(f"buildcage: error: {visible(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (Interrupted, KeyboardInterrupt):
        if state["json"]:
            from tui.cli_output import JsonPrinter
            from tui.engine.events import Done

            JsonPrinter()(Done(status="canceled"))  # every build's output ends with done
        print("buildcage: canceled", file=sys.stderr)
        return EXIT_CANCELED
    except BrokenPipeError:
        from tui.cli_output import stdout_gone

        stdout_gone()
        return EXIT_PIPE
    finally:
        for number, handler in previous.items():  # main() called in-process leaves no trace
            signal.signal(number, handler)


if __name__ == "__main__":
    sys.exit(main())
