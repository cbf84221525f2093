"""Provisioning is idempotent: on a ready host a second run changes nothing and says so."""

from __future__ import annotations

import subprocess

from podman_helpers import ROOT

CHANGES = ("wrote", "added", "installing", "started", "built", "pulled", "pushed", "tagged",
           "chmod")


def test_second_provisioning_changes_nothing(provisioned):
    out = subprocess.run(["bash", str(ROOT / "provision" / "provision.sh")], capture_output=True,
                         text=True, check=True, timeout=300).stdout
    lines = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    assert len(lines) >= 10
    for step, what in lines:
        assert step == "done" or what.startswith("ok"), (step, what)
        assert not what.startswith(CHANGES)
