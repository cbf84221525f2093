"""The security-versus-speed summary of a profile: ratings derived from the facts read on a real
container and from the profile's storage layout, plus the measured median time from history."""

from __future__ import annotations

from dataclasses import dataclass

from tui.engine.facts import SecurityFacts
from tui.engine.profiles import Profile


@dataclass(frozen=True)
class Rating:
    score: int
    """1 (worst) to 5 (best)."""
    reasons: tuple[str, ...]


def security_rating(facts: SecurityFacts) -> Rating:
    """Start from 5 and take away for each real weakness seen on the container."""
    score, reasons = 5, []
    if facts.privileged:
        score, reasons = 1, ["privileged container"]
    if facts.engine_sockets:
        score = 1
        reasons.append("a container engine socket is mounted")
    if facts.host_store == "read-write":
        score -= 3
        reasons.append("can write the host's image store: it can plant images the host will run")
    elif facts.host_store == "read-only":
        score -= 1
        reasons.append("reads the host's image store (read-only): it sees every host image")
    if facts.userns.startswith("host"):
        score -= 1
        reasons.append("root in the builder is root on the host (no user namespace)")
    else:
        reasons.append(f"own user namespace ({facts.userns})")
    if facts.selinux == "disabled":
        score -= 1
        reasons.append("SELinux separation disabled")
    if "SYS_ADMIN" in facts.effective_caps:
        if facts.userns.startswith("host"):
            score -= 2
            reasons.append("CAP_SYS_ADMIN on the host")
        else:
            reasons.append("CAP_SYS_ADMIN inside its own user namespace only")
    return Rating(max(1, min(5, score)), tuple(reasons))


def speed_rating(profile: Profile, facts: SecurityFacts, median_s: float | None) -> Rating:
    """Speed follows from what the builder can reuse: a cache, and base images without a pull."""
    score, reasons = 1, []
    if profile.keeps_cache:
        score += 2
        reasons.append("layer cache kept between builds")
    else:
        reasons.append("no cache: every build starts from an empty store")
    if facts.host_store != "none":
        score += 1
        reasons.append("host images used with no pull")
    elif not profile.keeps_cache:
        reasons.append("every base image pulled again")
    if profile.mount_program:
        reasons.append("fuse-overlayfs in the builder (slower than the kernel's overlay)")
    else:
        score += 1
        reasons.append("the kernel's overlay")
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


def summarize(profile: Profile, facts: SecurityFacts, median_s: float | None) -> ProfileSummary:
    return ProfileSummary(profile, facts, security_rating(facts),
                          speed_rating(profile, facts, median_s), median_s)
