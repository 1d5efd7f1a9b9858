"""In-memory stand-ins for the Kubernetes layer, for the cluster-free suite.

``FakeObjects`` behaves like the API server where fairshift relies on it: objects keyed by
(apiVersion, kind, namespace, name), uids, resourceVersions that change on every write,
``metadata.generation`` that changes with the spec, 409 on creating an existing object or on a
stale ``resourceVersion`` in a merge patch, merge patches as RFC 7386 says. It records every
write and can be told to fail the next calls or to let another writer interleave.

``route_target`` builds the ``RouteTarget`` of the example rollout for router tests.

``FakeWorkloads`` is the real ``Workloads`` on a ``FakeObjects`` whose Deployments roll out at
once (or only when ``settle`` is called), with helpers to create target Deployments.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fairshift.api.spec import Routing
from fairshift.k8s.errors import Conflict, NotFound
from fairshift.k8s.workloads import Workloads
from fairshift.routing.base import RouteTarget

Key = tuple[str, str, str, str]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, None deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class Write:
    """One write the fake received."""

    verb: str
    api_version: str
    kind: str
    namespace: str
    name: str
    body: dict[str, Any]


@dataclass
class Failure:
    """An error to raise on the next ``times`` calls of ``verb`` (on ``kind``, if given)."""

    verb: str
    error: Exception
    kind: str | None
    times: int


@dataclass
class FakeObjects:
    """An in-memory ``ObjectStore`` (and so ``ObjectApi``)."""

    settle_deployments: bool = True
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    reads: list[Key] = field(default_factory=list)  # every get, in order
    rejected: list[Write] = field(default_factory=list)  # writes refused with a 409
    _failures: list[Failure] = field(default_factory=list)
    _interleaved: list[tuple[str, str, Callable[[], object]]] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # test controls

    def fail(self, verb: str, error: Exception, kind: str | None = None, times: int = 1) -> None:
        """Raise ``error`` on the next ``times`` calls of ``verb`` (optionally only on ``kind``)."""
        self._failures.append(Failure(verb, error, kind, times))

    def interleave(self, verb: str, kind: str, action: Callable[[], object]) -> None:
        """Run ``action`` (another writer) just before the next ``verb`` on ``kind``."""
        self._interleaved.append((verb, kind, action))

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if someone else created it; not recorded as a write."""
        metadata = body["metadata"]
        key = (body["apiVersion"], body["kind"], metadata["namespace"], metadata["name"])
        self.objects[key] = self._stamped(copy.deepcopy(body), generation=1)
        return copy.deepcopy(self.objects[key])

    def stored(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The stored object (a copy); KeyError if absent."""
        return copy.deepcopy(self.objects[(api_version, kind, namespace, name)])

    def writes_of(self, kind: str, verb: str | None = None) -> list[Write]:
        """The recorded writes on ``kind`` (of ``verb``, if given)."""
        return [w for w in self.writes if w.kind == kind and verb in (None, w.verb)]

    def settle(self, namespace: str, name: str) -> None:
        """Make a Deployment's status say it has rolled out its current spec."""
        key = ("apps/v1", "Deployment", namespace, name)
        deployment = self.objects[key]
        replicas = deployment["spec"].get("replicas", 1)
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }

    # ObjectStore

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._before("get", kind)
        self.reads.append((api_version, kind, namespace, name))
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def create(self, api_version: str, kind: str, namespace: str, body: dict[str, Any]) -> None:
        self._before("create", kind)
        name = body["metadata"]["name"]
        key = (api_version, kind, namespace, name)
        write = Write("create", api_version, kind, namespace, name, copy.deepcopy(body))
        if key in self.objects:
            self.rejected.append(write)
            raise Conflict(f'{kind} "{name}" already exists', 409)
        self.writes.append(write)
        stored = copy.deepcopy(body)
        stored["metadata"]["namespace"] = namespace
        self.objects[key] = self._stamped(stored, generation=1)
        self._after_write(key)

    def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self._before("patch", kind)
        key = (api_version, kind, namespace, name)
        current = self._existing(key)
        precondition = patch.get("metadata", {}).get("resourceVersion")
        write = Write("patch", api_version, kind, namespace, name, copy.deepcopy(patch))
        if precondition is not None and precondition != current["metadata"]["resourceVersion"]:
            self.rejected.append(write)
            raise Conflict(f"the object {kind} {name} has been modified", 409)
        self.writes.append(write)
        patched = merge_patch(current, without_resource_version(patch))
        patched["status"] = current.get("status")
        generation = current["metadata"].get("generation", 1)
        if patched.get("spec") != current.get("spec"):
            generation += 1
        self.objects[key] = self._stamped(patched, generation)
        self._after_write(key)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._before("delete", kind)
        key = (api_version, kind, namespace, name)
        if self.objects.pop(key, None) is not None:
            self.writes.append(Write("delete", api_version, kind, namespace, name, {}))

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self._before("patch_status", kind)
        key = (api_version, kind, namespace, name)
        current = self._existing(key)
        self.writes.append(
            Write("patch_status", api_version, kind, namespace, name, copy.deepcopy(patch))
        )
        status = merge_patch(current.get("status") or {}, patch.get("status") or {})
        updated = {**current, "status": status}
        self.objects[key] = self._stamped(updated, current["metadata"].get("generation", 1))

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        self._before("list", kind)
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(",") if pair)
        return [
            copy.deepcopy(obj)
            for (version, k, ns, _), obj in sorted(self.objects.items())
            if (version, k) == (api_version, kind)
            and namespace in (None, ns)
            and wanted.items() <= (obj["metadata"].get("labels") or {}).items()
        ]

    # internals

    def _before(self, verb: str, kind: str) -> None:
        for index, (when, what, action) in enumerate(self._interleaved):
            if (when, what) == (verb, kind):
                del self._interleaved[index]
                action()
                break
        for failure in self._failures:
            if failure.verb == verb and failure.kind in (None, kind) and failure.times > 0:
                failure.times -= 1
                raise failure.error

    def _existing(self, key: Key) -> dict[str, Any]:
        current = self.objects.get(key)
        if current is None:
            raise NotFound(f"{key[1]} {key[2]}/{key[3]} not found", 404)
        return current

    def _stamped(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{metadata['name']}")
        metadata["resourceVersion"] = str(next(self._versions))
        metadata["generation"] = generation
        return obj

    def _after_write(self, key: Key) -> None:
        if self.settle_deployments and key[:2] == ("apps/v1", "Deployment"):
            self.settle(key[2], key[3])


def without_resource_version(patch: dict[str, Any]) -> dict[str, Any]:
    """A merge patch without its ``metadata.resourceVersion`` precondition."""
    result = copy.deepcopy(patch)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("resourceVersion", None)
        if not metadata:
            del result["metadata"]
    return result


def pod_template(image: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """A minimal pod template running ``image``."""
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "containers": [{"name": "model", "image": image, "ports": [{"containerPort": 8080}]}]
        },
    }


def deployment(
    namespace: str,
    name: str,
    image: str,
    replicas: int = 2,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment selecting ``labels`` (default ``app: <name>``)."""
    selector = dict(labels or {"app": name})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate"},
            "template": pod_template(image, selector),
        },
    }


class FakeWorkloads(Workloads):
    """``Workloads`` on a ``FakeObjects``; Deployments roll out at once unless ``on_demand``."""

    def __init__(self, objects: FakeObjects | None = None, on_demand: bool = False) -> None:
        self.objects = objects or FakeObjects(settle_deployments=not on_demand)
        super().__init__(self.objects)

    def add_target(
        self, namespace: str, name: str, image: str, replicas: int = 2
    ) -> dict[str, Any]:
        """Create the user's target Deployment (as the user would), rolled out."""
        stored = self.objects.seed(deployment(namespace, name, image, replicas))
        self.objects.settle(namespace, name)
        return stored

    def set_image(self, namespace: str, name: str, image: str) -> None:
        """Change the image of a Deployment's first container (a new revision)."""
        current = self.objects.stored("apps/v1", "Deployment", namespace, name)
        containers = current["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = image
        patch = {"spec": {"template": {"spec": {"containers": containers}}}}
        self.objects.patch("apps/v1", "Deployment", namespace, name, patch)

    def settle(self, namespace: str, name: str) -> None:
        """Let a Deployment finish rolling out (with ``on_demand``)."""
        self.objects.settle(namespace, name)


OWNER = {
    "apiVersion": "fairshift.io/v1alpha1",
    "kind": "ModelRollout",
    "name": "credit-scorer",
    "uid": "rollout-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}


def route_target(
    routing: dict[str, Any], owners: tuple[dict[str, Any], ...] = (OWNER,)
) -> RouteTarget:
    """The credit-scorer rollout in namespace lending, routed as ``routing`` says."""
    return RouteTarget(
        namespace="lending",
        rollout="credit-scorer",
        primary_service="credit-scorer-primary",
        canary_service="credit-scorer-canary",
        port=8080,
        routing=Routing.model_validate(routing),
        owner_references=owners,
        primary_deployment="credit-scorer-primary",
        candidate_deployment="credit-scorer",
    )
