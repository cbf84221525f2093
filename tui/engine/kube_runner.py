"""The same plan run as a Kubernetes Pod: its manifest (``renderings.kube_manifest``) is played
with ``podman kube play`` through the API, and the Pod's builder container is read, waited for,
stopped and cleaned exactly like a local builder, so the events are the same."""

from __future__ import annotations

from podman.errors import NotFound

from tui.engine.containers import remove_container
from tui.engine.renderings import kube_manifest
from tui.engine.runner import BuildRunner


class KubeRunner(BuildRunner):
    """Runs the plan's Pod manifest on the podman service (a one-node Kubernetes stand-in)."""

    @property
    def pod_name(self) -> str:
        return self.plan.container_name

    def _start_builder(self):
        response = self.client.api.post(
            "/play/kube", data=kube_manifest(self.plan).encode(),
            headers={"Content-Type": "application/x-yaml"})
        problem = _reason(response) if not response.ok else _container_errors(response)
        if problem:
            self._remove_pod()  # a pod whose containers failed to start stays otherwise
            raise RuntimeError(f"podman kube play refused the Pod: {problem}")
        container = self.client.containers.get(f"{self.pod_name}-builder")
        with self._lock:
            self._container = container
        if self.canceled:
            return None
        return container  # kube play started it

    def _remove_builder(self, container) -> str:
        return remove_container(container) or self._remove_pod()

    def _remove_pod(self) -> str:
        try:
            self.client.pods.get(self.pod_name).remove(force=True)
        except NotFound:
            pass
        except Exception as exc:  # podman gone: say the pod is left
            return f"pod {self.pod_name} ({exc})"
        return ""


def _container_errors(response) -> str:
    """podman answers 200 even when the Pod's containers failed to start; it lists why."""
    try:
        pods = response.json().get("Pods") or []
    except ValueError:
        return ""
    errors = [e for pod in pods for e in pod.get("ContainerErrors") or []]
    return errors[0] if errors else ""


def _reason(response) -> str:
    try:
        return response.json().get("message", response.text)
    except ValueError:
        return response.text.strip()
