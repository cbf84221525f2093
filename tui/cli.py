"""Command line: `buildcage [DIR]` starts the TUI (its picker in DIR); build, plan, profiles,
doctor, gc and history are headless and use the same engine."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tui.cli_output import HumanPrinter, JsonPrinter
from tui.engine.config import ConfigError, load_config
from tui.engine.podman_api import PodmanUnavailable
from tui.engine.profiles import ProfileError
from tui.interrupts import APP_SIGNALS, CANCEL_SIGNALS, Interrupts, interrupting

EXIT_FAILED, EXIT_USAGE, EXIT_CANCELED = 1, 2, 130


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
    build.add_argument("--quiet", action="store_true", help="no Buildah output lines")
    build.add_argument("--on", choices=["local", "kube"], default="local",
                       help="run as a plain container (local) or as the plan's Kubernetes Pod, "
                            "played with podman kube play (kube)")
    plan = sub.add_parser("plan", help="print the build as podman run, Kubernetes or JSON")
    _plan_options(plan)
    plan.add_argument("--format", choices=["podman", "kube", "json"], default="podman")
    profiles = sub.add_parser("profiles", help="profiles with facts checked on real containers")
    profiles.add_argument("--json", action="store_true")
    sub.add_parser("doctor", help="check this machine, with fixes")
    gc = sub.add_parser("gc", help="remove containers, pods and volumes left by buildcage "
                                   "processes that are gone (killed, terminal closed)")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    history = sub.add_parser("history", help="recent builds")
    history.add_argument("--json", action="store_true")
    history.add_argument("-n", type=int, default=20)
    return top


def _make_plan(engine, args: argparse.Namespace):
    from tui.engine.planner import parse_build_args, parse_secrets

    return engine.plan(
        args.context, profile=args.profile, containerfile=args.file, tag=args.tag,
        push=args.push, build_args=parse_build_args(args.build_arg),
        secrets=parse_secrets(args.secret), target_stage=args.target,
        no_cache=args.no_cache, project=args.project, confirmed=_confirmed(args),
    )


def _confirmed(args: argparse.Namespace) -> frozenset[str]:
    """The kinds of profile risk the command line confirms (tui.engine.profiles.CONFIRM_FLAGS)."""
    return frozenset(kind for kind, given in (("host-rw", args.allow_host_rw),
                                              ("unsafe", args.allow_unsafe_profile)) if given)


def cmd_build(engine, args: argparse.Namespace, interrupts: Interrupts | None = None) -> int:
    from tui.engine.events import Done
    from tui.engine.planner import check_push_target

    # Ctrl-C, SIGTERM or SIGHUP cancels: the runner removes the container, store and pins.
    # main installed the handlers already; a signal that came before the runner is kept.
    interrupts = interrupts or Interrupts()
    printer = JsonPrinter() if args.json else HumanPrinter(quiet=args.quiet)
    plan = _make_plan(engine, args)
    check_push_target(plan, engine.config)
    if interrupts.canceled:
        printer(Done(status="canceled"))
        return EXIT_CANCELED
    runner = engine.runner(plan, printer, on=args.on)
    interrupts.on_cancel(runner.cancel)
    done = runner.run()
    if done.status == "canceled":
        return EXIT_CANCELED
    return 0 if done.status == "succeeded" else EXIT_FAILED


def cmd_plan(engine, args: argparse.Namespace) -> int:
    from tui.engine.renderings import create_kwargs, kube_manifest, podman_run
    from tui.engine.stores import write_plan_files, write_secret_files

    # Printed to be run later: the command mounts the context itself, not a snapshot.
    plan = _make_plan(engine, args).without_snapshot()
    write_plan_files(plan)  # the printed command refers to these files: make it runnable as is
    if args.format == "podman":
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
    """Every profile with facts read from a real builder container; a profile whose container
    podman cannot create (e.g. an extra store that does not exist) is reported, not fatal."""
    from dataclasses import asdict

    from podman.errors import APIError

    from tui.engine.facts import describe_network

    rows: list = []
    with tempfile.TemporaryDirectory(prefix="buildcage-probe-") as ctx:
        (Path(ctx) / "Containerfile").write_text("FROM scratch\n")
        for profile in engine.profiles.profiles:
            plan = engine.plan(ctx, profile=profile.name, confirmed=True, project="probe")
            try:
                rows.append(engine.summary(plan))
            except APIError as exc:
                rows.append((profile, f"podman cannot create its builder: {exc.explanation}"))
    failed = [r for r in rows if isinstance(r, tuple)]
    if args.json:
        print(json.dumps([
            {"name": r[0].name, "summary": r[0].summary, "error": r[1],
             "risks": [r.text for r in r[0].risks()]} if isinstance(r, tuple) else
            {"name": r.profile.name, "summary": r.profile.summary,
             "security": asdict(r.security), "speed": asdict(r.speed),
             "median_s": r.median_s, "facts": r.facts.to_dict(),
             "risks": [risk.text for risk in r.profile.risks()]}
            for r in rows], indent=2))
        return EXIT_FAILED if failed else 0
    for row in rows:
        if isinstance(row, tuple):
            print(f"{row[0].name:10} error: {row[1]}")
            continue
        s, f = row, row.facts
        print(f"{s.profile.name:10} security {'●' * s.security.score:<5} "
              f"speed {'●' * s.speed.score:<5} {s.profile.summary}")
        print(f"{'':10} host store: {f.host_store}; user namespace: {f.userns}; "
              f"SELinux: {f.selinux}; caps: {len(f.effective_caps)}; "
              f"engine sockets: {', '.join(f.engine_sockets) or 'none'}")
        print(f"{'':10} network: {describe_network(f.network)}")
        for risk in s.profile.risks():
            print(f"{'':10} ⚠ must be confirmed: {risk.text}")
        for reason in s.security.reasons + s.speed.reasons:
            print(f"{'':10} - {reason}")
    return EXIT_FAILED if failed else 0


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
    orphans = find_orphans(client)
    if not orphans:
        print("nothing to remove: everything buildcage made belongs to a running process")
        return 0
    report = collect(client, orphans, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for line in report.removed:
        print(f"{verb} {line}")
    for line in report.left:
        print(f"left {line}", file=sys.stderr)
    return EXIT_FAILED if report.left else 0


def cmd_history(engine, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    records = engine.history.recent(args.n)
    if args.json:
        print(json.dumps([asdict(r) for r in records], indent=2))
        return 0
    import datetime

    for r in records:
        when = datetime.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.id:4} {when} {r.profile:9} {r.status:9} {r.duration_s:7.1f}s "
              f"{r.cache_hits:2}/{r.steps_total:<2} cached  {r.context}")
    return 0


VERBS = ("build", "plan", "profiles", "doctor", "gc", "history")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    start_dir = None
    if argv and argv[0] not in VERBS and not argv[0].startswith("-"):
        start_dir, argv = argv[0], argv[1:]  # `buildcage DIR`: the TUI, starting in DIR
    args = parser().parse_args(argv)
    # First thing, before anything slow: a build (and the TUI) cancels and cleans up on Ctrl-C,
    # SIGTERM and SIGHUP; the other verbs stop as on Ctrl-C, running their clean-ups.
    interrupts = Interrupts()
    if args.verb == "build":
        guard = interrupts.installed(CANCEL_SIGNALS)
    elif args.verb is None:
        guard = interrupts.installed(APP_SIGNALS)
    else:
        guard = interrupting()
    with guard:
        return _run(args, start_dir, interrupts)


def _run(args: argparse.Namespace, start_dir: str | None, interrupts: Interrupts) -> int:
    json_errors = getattr(args, "json", False) and args.verb == "build"
    try:
        from tui.engine.session import Engine

        engine = Engine(load_config())
        if args.verb is None:
            from tui.app import run_app

            return run_app(engine, start_dir, interrupts)
        if args.verb == "build":
            return cmd_build(engine, args, interrupts)
        handler = {"plan": cmd_plan, "profiles": cmd_profiles, "doctor": cmd_doctor,
                   "gc": cmd_gc, "history": cmd_history}[args.verb]
        return handler(engine, args)
    except KeyboardInterrupt:
        return EXIT_CANCELED
    except (ValueError, ConfigError, ProfileError, PodmanUnavailable) as exc:
        # PlanError, BadReference and friends: a message for people, not a traceback.
        if json_errors:
            JsonPrinter().error(str(exc))
        else:
            print(f"buildcage: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
