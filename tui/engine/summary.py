"""The security-versus-speed summary of a profile: ratings derived from the facts read on a real
container and from the profile's storage layout, plus the measured median time from history."""

from __future__ import annotations

from dataclasses import dataclass

from tui.engine.facts import KERNEL_OVERLAY, SecurityFacts, describe_network
from tui.engine.profiles import DEFAULT_CAPS, HOST_ESCAPE_CAPS, Profile


@dataclass(frozen=True)
class Rating:
    score: int
    """1 (worst) to 5 (best)."""
    reasons: tuple[str, ...]


def security_rating(facts: SecurityFacts) -> Rating:
    """Start from 5 and take away for each real weakness seen on the container."""
    score, reasons = 5, []
    host_userns = facts.userns.startswith("host")
    if facts.privileged:
        score, reasons = 1, ["privileged container"]
    if facts.engine_sockets:
        score = 1
        reasons.append("an engine socket is reachable: " + ", ".join(facts.engine_sockets)
                       + "; whoever reaches it controls the host's containers")
    via = f", through {', '.join(facts.host_store_via)}" if facts.host_store_via else ""
    if facts.host_store == "read-write":
        score -= 3
        reasons.append(f"can write the host's image store{via}: it can plant images the host "
                       "will run")
    elif facts.host_store == "read-only":
        score -= 1
        reasons.append(f"reads the host's image store (read-only{via}): it sees every host image")
    if host_userns:
        score -= 1
        reasons.append("root in the builder is root on the host (no user namespace)")
    else:
        reasons.append(f"own user namespace ({facts.userns})")
    if facts.selinux == "disabled":
        score -= 1
        reasons.append("SELinux separation disabled")
    for cap in sorted(set(facts.effective_caps) - DEFAULT_CAPS):
        if cap in HOST_ESCAPE_CAPS and host_userns:
            score = 1
            reasons.append(f"CAP_{cap} with root as the host's root: a way out of the container")
        else:
            score -= 1
            where = "" if host_userns else " (inside its own user namespace)"
            reasons.append(f"CAP_{cap} beyond the default set{where}")
    network = facts.network
    if network == "none":
        reasons.append("no network: RUN steps reach nothing")
    elif network in ("host", "bridge") or network.startswith(("container:", "ns:")):
        score -= 1
        reasons.append(f"{network.split(':')[0]} network: "
                       + describe_network(network).split(": ", 1)[1])
    elif network:
        reasons.append(f"network {describe_network(network)}")
    if facts.remote:
        reasons.append("podman runs on another host: its mounts are judged by their names "
                       "(paths there cannot be looked into from here; only built-in ones are "
                       "allowed)")
    return Rating(max(1, min(5, score)), tuple(reasons))


def speed_rating(profile: Profile, facts: SecurityFacts, median_s: float | None,
                 cache_repo: str = "", overlay_reason: str = "") -> Rating:
    """Speed follows from what the builder can reuse (a cache, base images without a pull) and
    from the overlay it mounts (read from the container: ``facts.overlay``).
    ``cache_repo``: the registry layer cache the build uses ("" for none); ``overlay_reason``:
    why the planner chose that overlay."""
    score, reasons = 1, []
    if profile.keeps_cache:
        score += 2
        reasons.append("layer cache kept between builds")
    elif cache_repo:
        score += 1
        reasons.append(f"layer cache through the registry ({cache_repo}): the images of the "
                       "last build's steps are pulled before the build and new ones pushed after "
                       "it, by the trusted phases; pulling them costs time too")
    else:
        reasons.append("no cache: every build starts from an empty store")
    if facts.host_store != "none":
        score += 1
        reasons.append("host images used with no pull")
    elif not profile.keeps_cache:
        reasons.append("every base image pulled again")
    why = f": {overlay_reason}" if overlay_reason else ""
    if facts.overlay == KERNEL_OVERLAY:
        score += 1
        reasons.append(f"the kernel's overlay{why}")
    elif facts.overlay.startswith("fuse-overlayfs"):
        reasons.append(f"fuse-overlayfs, slower than the kernel's overlay{why}")
    else:
        reasons.append(f"overlay {facts.overlay or 'unknown'}")
    if median_s is not None:
        reasons.append(f"median build on this machine: {median_s:.1f}s")
    return Rating(max(1, min(5, score)), tuple(reasons))


@dataclass(frozen=True)
class ProfileSummary:
    profile: Profile
    facts: SecurityFacts
    security: Rating
    speed: Rating
    median_s: float | None


def summarize(profile: Profile, facts: SecurityFacts, median_s: float | None,
              cache_repo: str = "", overlay_reason: str = "") -> ProfileSummary:
    security = security_rating(facts)
    if cache_repo:
        # As a project store: the cache is shared by the builds of one project, never others'.
        security = Rating(security.score, (*security.reasons,
                          f"shares a layer cache with earlier builds of this project through "
                          f"{cache_repo}: a build can poison it for later ones"))
    return ProfileSummary(profile, facts, security,
                          speed_rating(profile, facts, median_s, cache_repo, overlay_reason),
                          median_s)
