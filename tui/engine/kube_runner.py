"""The same plan run as a Kubernetes Pod: its manifest (``renderings.kube_manifest``) is played
with ``podman kube play`` through the API, and the Pod's builder container is read, waited for,
stopped and cleaned exactly like a local builder, so the events are the same."""

from __future__ import annotations

from podman.errors import NotFound

from tui.engine.containers import remove_container
from tui.engine.plan import BuildPlan, Phase
from tui.engine.renderings import kube_pod, to_yaml
from tui.engine.runner import BuildRunner
from tui.engine.secret_copies import remove_copy


class KubeRunner(BuildRunner):
    """Runs the plan's Pod manifest on the podman service (a one-node Kubernetes stand-in)."""

    makes_ahead = False

    def _reads_facts_here(self) -> bool:
        """Never: the Pod's store is on its node (here a stand-in), not this process's to read;
        its publish phase writes the facts as the manifest says."""
        return False

    def _idle_publish(self) -> None:
        """Never, for the same reason: the publish Pod looks at the store itself."""
        return None

    @staticmethod
    def _make_secrets(client, plan: BuildPlan) -> list[str]:
        """One Kubernetes Secret per phase that reads any, played through the API (podman
        stores it as a secret its kube play can mount; a plain podman secret it cannot).
        podman 4.3 writes a Secret's ``data`` values into the files as they are, without the
        base64 decoding Kubernetes does (measured): the files hold the base64 text, which the
        phases decode, as they do podman's own secrets."""
        made = []
        for spec in plan.phases():
            data = plan.kube_secret_data(spec.name)
            if not data:
                continue
            name = plan.kube_secret_name(spec.name)
            doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                   "type": "Opaque",
                   "data": {k: v.decode("ascii") for k, v in data.items()}}
            response = client.api.post("/play/kube", data=to_yaml(doc).encode(),
                                       headers={"Content-Type": "application/x-yaml"})
            if not response.ok:
                raise RuntimeError(f"podman kube play refused the Secret {name}: "
                                   f"{_reason(response)}")
            made.append(name)
        return made

    def _start_builder(self, spec: Phase):
        """Plays the phase's Pod. The build phase's Pod gets no network (on a cluster, the
        manifest's NetworkPolicy says the same); podman kube play takes that as a parameter."""
        params = {"network": "none"} if spec.network == "none" else None
        response = self.client.api.post(
            "/play/kube", params=params, data=to_yaml(kube_pod(self.plan, spec)).encode(),
            headers={"Content-Type": "application/x-yaml"})
        problem = _reason(response) if not response.ok else _container_errors(response)
        if problem:
            self._remove_pod(spec.container_name)  # a failed pod stays otherwise
            raise RuntimeError(f"podman kube play refused the Pod: {problem}")
        container = self.client.containers.get(f"{spec.container_name}-builder")
        with self._lock:
            self._container = container
            self._containers.append(container)
        if self.canceled:
            return None
        return container  # kube play started it

    def _cleanup(self, state) -> list[str]:
        """And, once the Pods are gone, the volumes podman kube play copied their Secrets into
        (tui.engine.secret_copies: the files in the clear, never removed by podman)."""
        left = super()._cleanup(state)
        for spec in self.plan.phases():
            problem = remove_copy(self.client, self.plan.kube_secret_name(spec.name))
            if problem:
                left.append(problem)
        return left

    def _remove_builder(self, container) -> str:
        pod = container.attrs.get("Pod") or ""
        return remove_container(container) or (self._remove_pod(pod) if pod else "")

    def _remove_pod(self, name: str) -> str:
        try:
            self.client.pods.get(name).remove(force=True)
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - podman gone: say the pod is left
            return f"pod {name} ({exc})"
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
