"""The facts behind a profile's summary, read from a builder container created for them."""

from __future__ import annotations

import dataclasses

from podman import PodmanClient

from tui.engine.containers import remove_container
from tui.engine.facts import SecurityFacts, facts_from_inspect, overlay_fact
from tui.engine.orphans import owned
from tui.engine.plan import BuildPlan
from tui.engine.renderings import create_kwargs
from tui.engine.stores import prepare, release


def probe_facts(client: PodmanClient, plan: BuildPlan) -> SecurityFacts:
    """Creates the builder container exactly as a build would (never started), reads its
    inspect data, and removes it and anything prepared for it."""
    plan = owned(plan)  # labelled with this process: a probe killed half-way is an orphan
    state = prepare(client, plan, pin=False, copy_context=False)
    container = None
    try:
        kwargs = create_kwargs(plan)
        kwargs["name"] = f"{plan.container_name}-probe"
        container = client.containers.create(**kwargs)
        container.reload()
        facts = facts_from_inspect(container.attrs, remote=plan.remote,
                                   overlay_volumes=kwargs.get("overlay_volumes"))
        if plan.remote:  # the storage.conf the builder is given is a copy of the plan's
            facts = dataclasses.replace(facts, overlay=overlay_fact(plan.storage_conf()))
        return facts
    finally:
        if container is not None:
            remove_container(container)
        release(client, state)





def session_facts(client: PodmanClient, plan: BuildPlan) -> SecurityFacts | None:
    """The facts of the session builder a session build of ``plan`` would run in, read from
    its real build container; None when there is none yet (or the plan cannot have one)."""
    from tui.engine.session_builder import find
    from tui.engine.session_plan import refusal

    if refusal(plan):
        return None
    found = find(client, plan)
    if found is None:
        return None
    record, container = found
    return facts_from_inspect(container.attrs, remote=False,
                              overlay_volumes=record.kwargs["build"].get("overlay_volumes"))
