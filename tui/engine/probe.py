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



