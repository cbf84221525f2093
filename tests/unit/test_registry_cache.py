"""The registry layer cache of fresh stores (issue 9): the trusted fetch phase pulls the
project's cache images into the fresh store before the build, Buildah's own ``--layers`` lookup
finds them there, and the trusted publish phase pushes what the build added. The build phase,
where the Containerfile's RUN steps execute, keeps no network and no credentials.

The fetch and publish scripts are run here against a fake ``buildah`` (a shell script that logs
its arguments and answers from files), so what they do with hostile input is tested, not read."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tui.engine.config import Config, ConfigError, RegistryConfig, load_config
from tui.engine.plan import BASE_FILE, CACHE_FILE, CACHE_IDS_FILE, FACTS_DIR
from tui.engine.planner import make_plan
from tui.engine.profiles import BUILTIN_PROFILES, ProfileError, ProfileSet
from tui.engine.registry import parse_reference
from tui.engine.renderings import create_kwargs, kube_pod, podman_run

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
MULTI = ROOT / "examples" / "multistage"
REPO = "127.0.0.1:5000/buildcage-cache/"


pytestmark = pytest.mark.usefixtures("data_home")


@pytest.fixture
def authfile(tmp_path, monkeypatch) -> Path:
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"127.0.0.1:5000": {"auth": "c2VjcmV0OnNlY3JldA=="}}}')
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    return auth


def plan_for(profile: str = "isolated", config: Config | None = None, **options):
    return make_plan(options.pop("context", HELLO), config=config or Config(), profile=profile,
                     confirmed=True, project=options.pop("project", "demo"), **options)


# -- where the cache is ------------------------------------------------------------------------

def test_isolated_caches_in_the_local_registry_by_default_and_the_others_do_not():
    assert plan_for("isolated").cache_repo == REPO + "demo"
    for profile in ("host-ro", "project", "host-rw"):
        assert plan_for(profile).cache_repo == ""


def test_the_cache_repository_is_a_valid_reference_whatever_the_project_is_called():
    for project in ("demo", "a..b", "x_-_y", "9.", "app-3f2a1c", "a" * 64):
        repo = plan_for(project=project).cache_repo
        assert repo.startswith(REPO)
        ref = parse_reference(f"{repo}:index-0123456789ab")
        assert str(ref) == f"{repo}:index-0123456789ab"
    assert plan_for(project="a..b").cache_repo != plan_for(project="a.b").cache_repo


def test_config_chooses_the_cache_registry_or_turns_it_off(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('cache_registry = "reg.example:5000"\n')
    assert plan_for(config=load_config(path)).cache_repo.startswith(
        "reg.example:5000/buildcage-cache/")
    path.write_text('cache_registry = ""\n')
    assert plan_for(config=load_config(path)).cache_repo == ""
    for bad in ('cache_registry = "not a host/x"', "cache_registry = 5"):
        path.write_text(bad + "\n")
        with pytest.raises(ConfigError, match="cache_registry"):
            load_config(path)


def test_the_push_registry_is_used_when_it_is_a_configured_one():
    config = Config()
    config.registries["reg.lan:5000"] = RegistryConfig("reg.lan:5000", True)
    plan = plan_for(config=config, push="reg.lan:5000/team/app:1")
    assert plan.cache_repo == "reg.lan:5000/buildcage-cache/demo"
    # An unconfigured push registry (docker.io here) gets no cache repositories of ours.
    assert plan_for(push="docker.io/someone/app:1").cache_repo == REPO + "demo"


def test_no_registry_configured_means_no_cache():
    config = Config(registries={})
    assert plan_for(config=config).cache_repo == ""


def test_a_user_profile_turns_the_cache_on_or_off_only_for_a_fresh_store():
    profiles = ProfileSet.from_config({"nocache": {"base": "isolated", "registry_cache": False}})
    assert not profiles.get("nocache").registry_cache
    assert {p.name for p in BUILTIN_PROFILES if p.registry_cache} == {"isolated"}
    with pytest.raises(ProfileError, match="registry_cache must be true or false"):
        ProfileSet.from_config({"x": {"base": "isolated", "registry_cache": "yes"}})
    with pytest.raises(ProfileError, match='registry_cache needs store = "fresh"'):
        ProfileSet.from_config({"x": {"store": "project", "registry_cache": True}})


# -- the phases ----------------------------------------------------------------------------------

def test_the_build_phase_keeps_no_network_and_no_credentials(authfile):
    plan = plan_for()
    build = plan.phase("build")
    assert build.network == "none" and not build.trusted
    assert create_kwargs(plan, "build")["network_mode"] == "none"
    assert kube_pod(plan, "build")["spec"].get("hostNetwork") is not True
    assert not [m for m in build.mounts if m.kind == "secret"]
    script = build.command[2]
    assert plan.cache_repo not in script
    for word in ("--authfile", "--cache-from", "--cache-to", "docker://", "buildah push",
                 "buildah pull", "auth.json"):
        assert word not in script
    # The trusted phases hold the credentials and do the registry work.
    for name in ("fetch", "publish"):
        phase = plan.phase(name)
        assert phase.network == "host" and phase.trusted
        assert [m for m in phase.mounts if m.target == "/run/secrets/auth.json"]
        assert plan.cache_repo in phase.command[2]


def test_layers_are_committed_per_step_only_when_a_cache_will_be_pushed():
    cached = plan_for().bud_argv()
    assert "--layers" in cached and "--layers=false" not in cached
    # Buildah keeps its working containers: each names the image a step started from, which is
    # how the publish phase tells the images this build used from stale ones it pulled.
    assert "--rm=false" in cached and "--force-rm" not in cached
    off = plan_for(config=Config(registries={})).bud_argv()
    assert "--layers=false" in off and "--force-rm" in off and "--rm=false" not in off
    assert "--layers" in plan_for("project").bud_argv()


def test_a_cache_build_always_fetches_even_from_scratch(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY a /a\n")
    assert [p.name for p in plan_for(context=ctx).phases()] == ["fetch", "build", "publish"]
    off = plan_for(context=ctx, config=Config(registries={}))
    assert [p.name for p in off.phases()] == ["build", "publish"]


def test_no_cache_pulls_nothing_from_the_cache_but_still_refreshes_it():
    plan = plan_for(no_cache=True)
    assert plan.cache_repo not in plan.phase("fetch").command[2]
    assert plan.cache_repo in plan.phase("publish").command[2]
    assert "--no-cache" in plan.bud_argv()


def test_each_containerfile_and_target_has_its_own_index():
    a = plan_for(context=MULTI)
    b = plan_for(context=MULTI, target_stage="build")
    assert a.cache_index != b.cache_index
    assert a.cache_index.startswith(a.cache_repo + ":index-")
    assert plan_for(context=MULTI).cache_index == a.cache_index


def test_the_pasteable_script_carries_the_same_cache_commands(authfile):
    plan = plan_for()
    text = podman_run(plan)
    assert shlex.quote(plan.phase("fetch").command[2]) in text
    assert shlex.quote(plan.phase("publish").command[2]) in text


# -- the scripts, run against a fake buildah ------------------------------------------------------

FAKE_BUILDAH = r"""#!/bin/sh
# Logs every call; answers from files in $FAKE.
echo "$*" >> "$FAKE/calls"
case "$1 $2" in
  "pull -q")
    for a in "$@"; do last=$a; done
    if grep -qxF "$last" "$FAKE/registry" 2>/dev/null; then echo pulled; exit 0; fi
    echo "manifest unknown" >&2; exit 1 ;;
  "inspect --type")
    for a in "$@"; do last=$a; done
    case "$*" in
      *Labels*) cat "$FAKE/label"; exit 0 ;;
      *FromImageID*) if [ -f "$FAKE/id-$(echo "$last" | tr '/:' '__')" ]; then
                       cat "$FAKE/id-$(echo "$last" | tr '/:' '__')"; exit 0; fi
                     exit 1 ;;
    esac
    echo '{}' ; exit 0 ;;
  "containers -a") cat "$FAKE/containers"; exit 0 ;;
  "images --json") cat "$FAKE/images.json"; exit 0 ;;
  "push -q")
    # push-fails: empty = every push fails, else only pushes of the id it holds
    if [ -f "$FAKE/push-fails" ]; then
      [ -s "$FAKE/push-fails" ] || exit 1
      case "$*" in *"$(cat "$FAKE/push-fails")"*) exit 1 ;; esac
    fi
    exit 0 ;;
  "from scratch") echo ctr; exit 0 ;;
esac
exit 0
"""


class Fake:
    """A fake buildah on PATH and the files it answers from."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "fake"
        self.bin = tmp / "bin"
        self.facts = tmp / "facts"
        for d in (self.dir, self.bin, self.facts):
            d.mkdir()
        (self.bin / "buildah").write_text(FAKE_BUILDAH)
        (self.bin / "buildah").chmod(0o755)
        for name in ("calls", "registry", "label", "containers"):
            (self.dir / name).write_text("")
        (self.dir / "images.json").write_text("[]")

    def calls(self) -> list[str]:
        return (self.dir / "calls").read_text().splitlines()

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        script = script.replace(FACTS_DIR, str(self.facts))
        script = script.replace("/var/tmp/buildcage-secrets", str(self.dir / "secrets"))
        script = script.replace(CACHE_IDS_FILE, str(self.dir / "cache-ids"))
        script = script.replace("/run/secrets", str(self.dir / "run-secrets"))
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "FAKE": str(self.dir)}
        return subprocess.run(["sh", "-ec", script], capture_output=True, text=True, env=env,
                              cwd=self.dir, check=False, timeout=30)


HEX = [f"{i:x}" * 64 for i in range(1, 16)]


def cache_script(plan, phase: str) -> str:
    """The cache part of the phase's script (the phase runs it after its own work; the fetch
    reads the index beside the bases' pulls, then pulls the images it lists)."""
    command = plan.phase(phase).command[2]
    if phase == "publish":
        assert plan.cache_push_script() in command
        return plan.cache_push_script()
    index, pulls = plan.cache_index_script(), plan.cache_pull_script()
    assert f"{{ {index}; }} & " in command and command.endswith(f"; wait; {pulls}")
    return f"{index}; {pulls}"


def test_fetch_pulls_every_listed_image_and_refuses_anything_but_an_image_id(tmp_path):
    plan = plan_for()
    fake = Fake(tmp_path)
    (fake.dir / "registry").write_text(
        "\n".join([plan.cache_index, *(f"{plan.cache_repo}:{h}" for h in HEX[:3])]) + "\n")
    hostile = ["$(touch PWNED)", "`touch PWNED2`", "*", "--authfile=/etc/shadow",
               "../../x", HEX[4][:63], HEX[5] + "0", HEX[10].upper(), f"{HEX[7]};touch PWNED3"]
    (fake.dir / "label").write_text(" ".join([HEX[0], *hostile, HEX[1], HEX[2], HEX[3]]))
    result = fake.run(cache_script(plan, "fetch"))
    assert result.returncode == 0, result.stderr
    pulls = [c.split()[-1] for c in fake.calls() if c.startswith("pull ")]
    assert pulls[0] == plan.cache_index
    assert sorted(pulls[1:]) == [f"{plan.cache_repo}:{h}" for h in HEX[:4]]
    assert not list(fake.dir.glob("PWNED*"))
    assert not [c for c in fake.calls() if "shadow" in c or "touch" in c or "../" in c]
    # The index image is removed again: only images of the cache stay in the store.
    assert any(c.startswith("rmi ") and plan.cache_index in c for c in fake.calls())
    # A listed image the registry lost (HEX[3]) is no error: that step is simply built.
    assert f"cache image {HEX[3]} is gone" in result.stdout + result.stderr
    assert "registry cache: 3 images from" in result.stdout


def test_fetch_pulls_the_deepest_image_first_then_the_others_together(tmp_path):
    # The index lists the images in build order, the result last: pulled first, it brings
    # every earlier step's layers in one pull; the others then need only manifest and config,
    # and are pulled several at a time. A repeated id is pulled once.
    plan = plan_for()
    fake = Fake(tmp_path)
    (fake.dir / "registry").write_text(
        "\n".join([plan.cache_index, *(f"{plan.cache_repo}:{h}" for h in HEX[:6])]) + "\n")
    (fake.dir / "label").write_text(" ".join([*HEX[:5], HEX[2], HEX[5]]))
    result = fake.run(cache_script(plan, "fetch"))
    assert result.returncode == 0, result.stderr
    pulls = [c.split()[-1] for c in fake.calls() if c.startswith("pull ")]
    assert pulls[:2] == [plan.cache_index, f"{plan.cache_repo}:{HEX[5]}"]
    assert sorted(pulls[2:]) == [f"{plan.cache_repo}:{h}" for h in HEX[:5]]
    assert "xargs -r -n 1 -P 4 " in plan.cache_pull_script()
    assert "registry cache: 6 images from" in result.stdout


def test_fetch_goes_on_without_a_cache_yet(tmp_path):
    plan = plan_for()
    fake = Fake(tmp_path)
    # A kept (session) fetch container's list from an earlier build is not taken for this one.
    (fake.dir / "cache-ids").write_text(HEX[0])
    result = fake.run(cache_script(plan, "fetch"))
    assert result.returncode == 0, result.stderr
    assert [c for c in fake.calls() if c.startswith("pull ")] != []
    assert not [c for c in fake.calls() if c.startswith("inspect")]
    assert not [c for c in fake.calls() if HEX[0] in c]
    assert "nothing in" in result.stdout


def images_json(entries: dict[str, list[str]]) -> str:
    return json.dumps([{"id": i[:12], "names": names} for i, names in entries.items()])


def setup_store(fake: Fake, plan, *, containers: list[str], final: str, pulled: list[str],
                base: str) -> None:
    (fake.dir / "containers").write_text("\n".join(containers) + "\n")
    # The publish phase wrote the bases' facts (``ID DIGEST``) before its cache step.
    for index, _ref in enumerate(plan.fetch_refs):
        (fake.facts / BASE_FILE.format(index=index)).write_text(f"{base} sha256:{'0' * 64}\n")
    (fake.dir / ("id-" + plan.tag.replace("/", "_").replace(":", "_"))).write_text(final + "\n")
    entries = {base: list(plan.fetch_refs), final: [plan.tag]}
    for h in pulled:
        entries.setdefault(h, []).append(f"{plan.cache_repo}:{h}")
    (fake.dir / "images.json").write_text(images_json(entries))


def test_publish_pushes_what_the_build_added_and_an_index_of_what_it_used(tmp_path, authfile):
    plan = plan_for()
    fake = Fake(tmp_path)
    base, used, stale, new, final = HEX[0], HEX[1], HEX[2], HEX[3], HEX[4]
    setup_store(fake, plan, containers=[base, used, new, "$(touch PWNED)", "--all"],
                final=final, pulled=[used, stale], base=base)
    result = fake.run(cache_script(plan, "publish"))
    assert result.returncode == 0, result.stderr
    pushes = [c.split() for c in fake.calls() if c.startswith("push ")]
    assert sorted(p[-1] for p in pushes) == sorted(
        f"docker://{plan.cache_repo}:{h}" for h in (new, final))
    assert all("--authfile" in p for p in pushes)
    label = next(c for c in fake.calls() if c.startswith("config "))
    listed = label.split("buildcage.cache.images=", 1)[1].split()
    assert listed[:-1] == [used, new, final]  # the last word is the container
    commit = next(c for c in fake.calls() if c.startswith("commit "))
    assert f"docker://{plan.cache_index}" in commit and "--authfile" in commit
    assert not list(fake.dir.glob("PWNED*"))
    assert (fake.facts / CACHE_FILE).read_text().split() == ["images", "3", "pushed", "2"]


def test_publish_lists_the_images_in_build_order_and_pushes_the_deepest_first(tmp_path):
    # Working containers come in the order the build made them (not sorted): the index keeps
    # it, the result last, so the next fetch knows which image holds every layer.
    plan = plan_for()
    fake = Fake(tmp_path)
    base, first, second, third, final = HEX[0], HEX[9], HEX[3], HEX[7], HEX[1]
    setup_store(fake, plan, containers=[base, first, second, first, third], final=final,
                pulled=[first], base=base)
    result = fake.run(cache_script(plan, "publish"))
    assert result.returncode == 0, result.stderr
    pushes = [c.split()[-1] for c in fake.calls() if c.startswith("push ")]
    assert pushes[0] == f"docker://{plan.cache_repo}:{final}"
    assert sorted(pushes[1:]) == sorted(f"docker://{plan.cache_repo}:{h}" for h in (second, third))
    label = next(c for c in fake.calls() if c.startswith("config "))
    assert label.split("buildcage.cache.images=", 1)[1].split()[:-1] == [
        first, second, third, final]
    assert (fake.facts / CACHE_FILE).read_text().split() == ["images", "4", "pushed", "3"]


def test_publish_pushes_nothing_when_the_build_used_exactly_the_cache(tmp_path):
    plan = plan_for()
    fake = Fake(tmp_path)
    base, a, b = HEX[0], HEX[1], HEX[2]
    setup_store(fake, plan, containers=[base, a], final=b, pulled=[a, b], base=base)
    result = fake.run(cache_script(plan, "publish"))
    assert result.returncode == 0, result.stderr
    assert not [c for c in fake.calls() if c.startswith(("push ", "commit ", "from "))]
    assert (fake.facts / CACHE_FILE).read_text().split() == ["images", "2", "pushed", "0"]


def test_a_failed_cache_push_is_recorded_and_does_not_fail_the_publish(tmp_path):
    plan = plan_for()
    fake = Fake(tmp_path)
    setup_store(fake, plan, containers=[HEX[0]], final=HEX[1], pulled=[], base=HEX[0])
    (fake.dir / "push-fails").write_text("")
    result = fake.run(cache_script(plan, "publish") + "; echo after")
    assert result.returncode == 0 and "after" in result.stdout
    assert (fake.facts / CACHE_FILE).read_text().startswith("failed")
    assert not [c for c in fake.calls() if c.startswith("commit ")]
    # One push of several failing (pushed together) fails the cache too, naming that image.
    (tmp_path / "several").mkdir()
    fake = Fake(tmp_path / "several")
    setup_store(fake, plan, containers=[HEX[0], HEX[2], HEX[3]], final=HEX[1], pulled=[],
                base=HEX[0])
    (fake.dir / "push-fails").write_text(HEX[3])
    result = fake.run(cache_script(plan, "publish") + "; echo after")
    assert result.returncode == 0 and "after" in result.stdout
    assert (fake.facts / CACHE_FILE).read_text().strip() == (
        f"failed: push of {HEX[3]} to {plan.cache_repo}")
    assert not [c for c in fake.calls() if c.startswith("commit ")]


# -- what the user is told -------------------------------------------------------------------------

def test_the_cache_fact_is_read_from_the_publish_phase_file_only(tmp_path):
    from tui.engine.events import CacheExported
    from tui.engine.image_facts import read_facts

    plan = plan_for()
    plan.facts_dir.mkdir(parents=True)
    (plan.facts_dir / CACHE_FILE).write_text("images 3 pushed 2\n")
    fact = read_facts(plan).cache
    assert isinstance(fact, CacheExported)
    assert (fact.repo, fact.images, fact.pushed, fact.error) == (plan.cache_repo, 3, 2, "")
    (plan.facts_dir / CACHE_FILE).write_text("failed: push of abc\x1b[2J\n")
    fact = read_facts(plan).cache
    assert isinstance(fact, CacheExported) and fact.error.startswith("push of abc")
    (plan.facts_dir / CACHE_FILE).write_text("images lots pushed -1\n")
    assert read_facts(plan).cache.error == "the publish phase left no readable record"
    (plan.facts_dir / CACHE_FILE).unlink()
    assert read_facts(plan).cache.error == "the publish phase left no readable record"
    assert read_facts(plan_for("project")).cache is None


def test_the_card_names_the_cache_and_what_it_shares():
    from tests.unit.test_facts import facts
    from tui.engine.summary import summarize

    plan = plan_for()
    card = summarize(plan.profile, facts("isolated"), None, cache_repo=plan.cache_repo)
    speed = " ".join(card.speed.reasons)
    assert plan.cache_repo in speed and "no cache" not in speed
    assert "earlier builds of this project" in " ".join(card.security.reasons)
    bare = summarize(plan.profile, facts("isolated"), None)
    assert "no cache" in " ".join(bare.speed.reasons)
    assert card.speed.score > bare.speed.score


def test_a_cache_registry_that_does_not_answer_turns_the_cache_off_not_the_build(tmp_path):
    from tests.support.replay import ReplayEngine
    from tests.unit.test_prepare import Reach
    from tui.engine.history import History
    from tui.engine.request import BuildRequest

    for answers in (True, False):
        reach = Reach(answers)
        engine = ReplayEngine(History(tmp_path / f"h{answers}.sqlite3"), reach=reach)
        plan = engine.prepare(BuildRequest(HELLO, "isolated", project="demo")).plan
        assert reach.calls == [("127.0.0.1:5000", False)]
        assert plan.cache_repo == (REPO + "demo" if answers else "")
        assert ("registry cache off for this build" in plan.cache_note) is not answers
        assert ("--layers=false" in plan.bud_argv()) is not answers


# -- where the phases run: a remote service, Kubernetes Pods ---------------------------------------

def test_a_remote_service_gets_no_cache_in_this_machines_loopback_registry():
    # Its trusted phases run on another host, whose 127.0.0.1:5000 is another registry: the
    # cache (and the credentials sent with it) would go to whatever listens there.
    plan = plan_for(remote=True)
    assert plan.cache_repo == "" and not plan.pulls_cache and not plan.pushes_cache
    assert "registry cache off for this build" in plan.cache_note
    assert "127.0.0.1:5000" in plan.cache_note and "cache_registry" in plan.cache_note
    assert "--layers=false" in plan.bud_argv()
    assert "buildcage-cache" not in " ".join(" ".join(p.command) for p in plan.phases())
    for loopback in ("localhost:5000", "[::1]:5000", "127.0.0.2"):
        config = Config(cache_registry=loopback)
        assert plan_for(config=config, remote=True).cache_repo == ""
        assert plan_for(config=config).cache_repo.startswith(loopback + "/")
    # A registry named by an address that host can resolve too is kept.
    named = plan_for(config=Config(cache_registry="reg.example:5000"), remote=True)
    assert named.cache_repo == "reg.example:5000/buildcage-cache/demo" and not named.cache_note


def test_kube_pods_keep_the_cache_and_its_credentials_in_the_trusted_pods(authfile):
    plan = plan_for()
    pods = {spec.name: kube_pod(plan, spec) for spec in plan.phases()}
    assert set(pods) == {"fetch", "build", "publish"}
    build = pods["build"]["spec"]
    assert build["hostNetwork"] is False
    assert not [v for v in build["volumes"] if "secret" in v]
    assert plan.cache_repo not in json.dumps(build)
    assert "auth" not in plan.kube_secret_data("build")
    for name in ("fetch", "publish"):
        spec = pods[name]["spec"]
        assert spec["hostNetwork"] is True
        assert plan.cache_repo in json.dumps(spec["containers"][0]["command"])
        assert [v for v in spec["volumes"] if "secret" in v]
        assert any("auth" in key for key in plan.kube_secret_data(name))


# -- only where it pays (tui.engine.cache_worth) ------------------------------------------------

def _full_run(history, plan, durations: list[float], *, profile: str = "isolated",
              hits: int = 0, status: str = "succeeded", started: float = 1000.0,
              containerfile: str = "", target: str = "") -> None:
    from tui.engine.history import BuildRecord, StepRecord

    history.add(BuildRecord(
        started_at=started, profile=profile, context=str(plan.context),
        containerfile=containerfile or str(plan.containerfile), stage_target=target,
        status=status, steps_total=len(durations), cache_hits=hits,
        steps=[StepRecord(1, i + 1, f"RUN step {i}", d, i < hits)
               for i, d in enumerate(durations)]))


def test_the_cache_is_used_only_where_the_last_full_run_says_it_pays(tmp_path):
    from tests.support.replay import ReplayEngine
    from tui.engine.history import History
    from tui.engine.request import BuildRequest

    request = BuildRequest(HELLO, "isolated", project="demo")
    history = History(tmp_path / "h.sqlite3")
    engine = ReplayEngine(history)
    plan = engine.prepare(request).plan
    # No full run yet: the cache is tried (its pushes make the next build's measure).
    assert plan.cache_repo == REPO + "demo" and not plan.cache_note

    # Cheap steps (an echo each): pulling their images costs more than running them.
    _full_run(history, plan, [0.1, 0.2, 0.2])
    off = engine.prepare(request).plan
    assert off.cache_repo == "" and not off.pulls_cache and not off.pushes_cache
    assert "--layers=false" in off.bud_argv()
    assert "registry cache off for this build: its 3 RUN steps took 0.5 s" in off.cache_note
    assert "registry_cache_always" in off.cache_note
    assert [p.name for p in off.phases()] == ["fetch", "build", "publish"]  # the base only
    assert "buildcage-cache" not in off.phase("fetch").command[2]
    # `buildcage plan` and a debug shell's rebuild (no registry check) print and run the same.
    assert engine.prepare(request, check_push=False).plan.cache_repo == ""

    # A later build that hit the cache, a failed one, another target, Containerfile or
    # profile: none of them is this build's full run.
    _full_run(history, plan, [0.01] * 4, hits=2, started=2000.0)
    _full_run(history, plan, [9.0] * 4, status="failed", started=2001.0)
    _full_run(history, plan, [9.0] * 4, target="build", started=2002.0)
    _full_run(history, plan, [9.0] * 4, containerfile="/elsewhere/Containerfile",
              started=2003.0)
    _full_run(history, plan, [9.0] * 4, profile="isolated-nocache", started=2004.0)
    assert engine.prepare(request).plan.cache_repo == ""

    # Steps that work (a compile, a package install): the cache pays.
    _full_run(history, plan, [0.1, 4.0, 0.2, 0.2], started=3000.0)
    on = engine.prepare(request).plan
    assert on.cache_repo == REPO + "demo" and on.pulls_cache and on.pushes_cache
    assert "--layers" in on.bud_argv() and not on.cache_note


def test_a_profile_can_use_the_cache_even_where_it_does_not_pay(tmp_path):
    from tests.support.replay import ReplayEngine
    from tui.engine.history import History
    from tui.engine.request import BuildRequest

    config = Config(profiles={"always": {"base": "isolated", "registry_cache_always": True}})
    history = History(tmp_path / "h.sqlite3")
    engine = ReplayEngine(history, config=config)
    request = BuildRequest(HELLO, "always", project="demo")
    _full_run(history, engine.prepare(request).plan, [0.1, 0.1], profile="always")
    assert engine.prepare(request).plan.cache_repo == REPO + "demo"
    with pytest.raises(ProfileError, match="registry_cache_always must be true or false"):
        ProfileSet.from_config({"x": {"base": "isolated", "registry_cache_always": "yes"}})


def test_the_verdict_weighs_the_steps_against_what_their_images_cost():
    from tui.engine.cache_worth import judge
    from tui.engine.history import BuildRecord, StepRecord

    def run(*steps: tuple[str, float], load: float = 1.0) -> BuildRecord:
        return BuildRecord(started_at=0.0, profile="isolated", context="/c", status="succeeded",
                           steps=[StepRecord(1, i, text, seconds * load, False)
                                  for i, (text, seconds) in enumerate(steps)])

    tiny = [("FROM b", 0.1), ("RUN echo one", 0.3), ("RUN echo two", 0.3), ("COPY a /a", 0.2)]
    steps = [("FROM b", 0.1), *[(f"RUN echo {i}", 0.3) for i in range(16)], ("COPY a /a", 0.2)]
    work = [("FROM b", 0.1), ("RUN make", 4.0), ("COPY a /a", 0.2), ("run cat /a", 0.3)]
    assert judge(None).pays and judge(run()).pays
    # Counted in the build's own typical step, so a loaded machine (every step three times
    # slower) judges alike: echo steps only just pay for their images, one that works does.
    for load in (1.0, 3.0):
        assert not judge(run(*tiny, load=load)).pays
        assert judge(run(*steps, load=load)).pays
        assert judge(run(*work, load=load)).pays
    assert ("its 2 RUN steps took 1.8 s in the last full build, less than fetching the images "
            "of its 4 steps costs (about 3.2 s)") in judge(run(*tiny, load=3.0)).why
    # A cached copy is no saving: its image brings the same bytes back through the registry
    # (the bench's *data*, as its full run was recorded: the cache made its warm rebuild 5.4 s
    # against 2.9 s without, and its cold build pushed 6 images for 3 s more).
    data = [("FROM b", 0.0), ("COPY blob.bin /src/blob.bin", 0.4), ("COPY files /src/files", 0.2),
            ("RUN tar -cf /src/files.tar -C /src files", 0.6), ("COPY app.txt /src/app.txt", 0.2),
            ("FROM b", 0.0), ("COPY --from=build /src/files.tar /files.tar", 0.2),
            ("COPY --from=build /src/app.txt /app.txt", 0.2)]
    assert not judge(run(*data)).pays
    assert not judge(run(("FROM b", 0.1), ("RUN echo 1", 0.3), ("RUN echo 2", 0.3),
                         ("COPY big /big", 9.0), ("ADD x.tar /x", 3.0))).pays
    assert judge(run(("FROM b", 0.1), ("COPY big /big", 9.0), ("run make", 6.0))).pays
    # Long steps only: the images still cost what pulls cost, not minutes each (a reviewer's
    # case: three compiles of 20-60 s were judged not to pay).
    assert judge(run(("FROM b", 0.0), ("COPY . /src", 0.3), ("RUN make a", 30.0),
                     ("RUN make b", 60.0), ("RUN make c", 20.0))).pays
    # Too few steps for a typical one: seconds as measured on a quiet machine.
    assert judge(run(("FROM b", 0.1), ("RUN make", 5.0))).pays
    assert not judge(run(("FROM b", 0.1), ("RUN echo", 0.3))).pays
    assert not judge(run(("FROM b", -50.0), ("RUN echo", 0.3))).pays  # negative: none
