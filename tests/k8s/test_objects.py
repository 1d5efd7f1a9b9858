"""KubeObjects speaks merge patch and maps API errors; the store helpers retry conflicts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, api_exception

from fairshift.k8s.errors import (
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    NotOwned,
    UnknownKind,
    Unreachable,
)
from fairshift.k8s.objects import MERGE_PATCH, KubeObjects
from fairshift.k8s.store import is_owned_by, read_modify_write, require_owned
from tests.fakes import OWNER, FakeObjects


def api_error(status: int, message: str) -> Exception:
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"kind": "Status", "message": message})
    translated: Exception = api_exception(error)  # type: ignore[no-untyped-call]
    return translated


@dataclass
class StubInstance:
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.body


@dataclass
class StubResource:
    """Records calls; raises ``error`` if set, else answers ``answer``."""

    answer: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __getattr__(self, verb: str) -> Any:
        if verb == "status":
            return self

        def call(**kwargs: Any) -> StubInstance:
            self.calls.append((verb, kwargs))
            if self.error is not None:
                raise self.error
            return StubInstance(self.answer)

        return call


@dataclass
class StubDiscovery:
    resource: StubResource
    unknown: bool = False

    def get(self, api_version: str, kind: str) -> StubResource:
        if self.unknown:
            raise ResourceNotFoundError(f"No matches found for {api_version} {kind}")
        return self.resource


@dataclass
class StubDynamic:
    resources: StubDiscovery


def objects_answering(
    answer: dict[str, Any] | None = None, error: Exception | None = None, unknown: bool = False
) -> tuple[KubeObjects, StubResource]:
    resource = StubResource(answer or {}, error)
    dynamic = cast(DynamicClient, StubDynamic(StubDiscovery(resource, unknown)))
    return KubeObjects(dynamic, request_timeout=7), resource


class TestKubeObjects:
    def test_get_returns_a_plain_dict(self) -> None:
        objects, resource = objects_answering({"metadata": {"name": "x"}})

        assert objects.get("v1", "Service", "ns", "x") == {"metadata": {"name": "x"}}
        assert resource.calls == [("get", {"name": "x", "namespace": "ns", "_request_timeout": 7})]

    def test_a_missing_object_is_none_and_deleting_it_is_fine(self) -> None:
        objects, _ = objects_answering(error=api_error(404, 'services "x" not found'))

        assert objects.get("v1", "Service", "ns", "x") is None
        objects.delete("v1", "Service", "ns", "x")

    def test_patches_are_json_merge_patches(self) -> None:
        objects, resource = objects_answering()

        objects.patch("apps/v1", "Deployment", "ns", "d", {"spec": {"replicas": 2}})
        objects.patch_status("fairshift.io/v1alpha1", "ModelRollout", "ns", "r", {"status": {}})

        assert [kwargs["content_type"] for _, kwargs in resource.calls] == [MERGE_PATCH] * 2
        assert {kwargs["field_manager"] for _, kwargs in resource.calls} == {"fairshift"}

    @pytest.mark.parametrize(
        ("status", "kind"),
        [(409, Conflict), (403, Forbidden), (422, Invalid), (400, Invalid), (500, KubeError)],
    )
    def test_api_errors_keep_the_servers_message(self, status: int, kind: type[KubeError]) -> None:
        objects, _ = objects_answering(error=api_error(status, "the server says why"))

        with pytest.raises(kind, match="creating Service ns/x: the server says why") as raised:
            objects.create("v1", "Service", "ns", {"metadata": {"name": "x"}})
        assert raised.value.status == status

    def test_a_kind_the_server_does_not_serve_is_unknown(self) -> None:
        objects, _ = objects_answering(unknown=True)

        with pytest.raises(UnknownKind, match="is its CRD installed"):
            objects.get("gateway.networking.k8s.io/v1", "HTTPRoute", "ns", "r")

    def test_a_server_out_of_reach_is_unreachable(self) -> None:
        refused = urllib3.exceptions.MaxRetryError(None, "/api", "connection refused")  # type: ignore[arg-type]
        objects, _ = objects_answering(error=refused)

        with pytest.raises(Unreachable):
            objects.list("v1", "Service", None)

    def test_list_returns_the_items(self) -> None:
        objects, resource = objects_answering({"items": [{"metadata": {"name": "a"}}]})

        assert objects.list("v1", "Service", "ns", "app=x") == [{"metadata": {"name": "a"}}]
        assert resource.calls[0][1]["label_selector"] == "app=x"


class TestReadModifyWrite:
    def config_map(self, objects: FakeObjects) -> None:
        objects.seed(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "ns"},
                "data": {"n": "1"},
            }
        )

    def increment(self, fresh: dict[str, Any]) -> dict[str, Any]:
        return {"data": {"n": str(int(fresh["data"]["n"]) + 1)}}

    def test_retries_on_a_fresh_read_after_a_conflict(self) -> None:
        objects = FakeObjects()
        self.config_map(objects)
        objects.interleave(
            "patch",
            "ConfigMap",
            lambda: objects.patch("v1", "ConfigMap", "ns", "c", {"data": {"n": "5"}}),
        )

        assert read_modify_write(objects, "v1", "ConfigMap", "ns", "c", self.increment) is True
        assert objects.stored("v1", "ConfigMap", "ns", "c")["data"]["n"] == "6"
        assert len(objects.rejected) == 1

    def test_nothing_to_change_sends_nothing(self) -> None:
        objects = FakeObjects()
        self.config_map(objects)

        assert read_modify_write(objects, "v1", "ConfigMap", "ns", "c", lambda _: None) is False
        assert objects.writes == []

    def test_gives_up_after_losing_every_race(self) -> None:
        objects = FakeObjects()
        self.config_map(objects)
        objects.fail("patch", Conflict("modified", 409), times=10)

        with pytest.raises(Conflict, match="gave up after 3 tries"):
            read_modify_write(objects, "v1", "ConfigMap", "ns", "c", self.increment, attempts=3)

    def test_a_missing_object_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            read_modify_write(FakeObjects(), "v1", "ConfigMap", "ns", "c", self.increment)


class TestOwnership:
    def test_owned_when_the_controller_uid_is_among_the_owners(self) -> None:
        owned = {"metadata": {"ownerReferences": [{"uid": "other"}, {"uid": OWNER["uid"]}]}}

        assert is_owned_by(owned, (OWNER,))
        assert not is_owned_by({"metadata": {}}, (OWNER,))
        assert is_owned_by({"metadata": {}}, ())

    def test_someone_elses_object_is_refused(self) -> None:
        with pytest.raises(NotOwned, match="Service ns/x exists and is not owned"):
            require_owned({"metadata": {}}, (OWNER,), "Service ns/x")


def test_the_adapters_on_the_store_do_not_import_the_kubernetes_client() -> None:
    """Only ``objects`` (and ``client`` when it connects) load the slow Kubernetes client."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import fairshift

    source_root = str(Path(fairshift.__file__).resolve().parents[1])
    code = (
        "import sys\n"
        "import fairshift.k8s.workloads, fairshift.k8s.auditstore, fairshift.k8s.rollouts\n"
        "import fairshift.k8s.events, fairshift.k8s.secrets, fairshift.k8s.store\n"
        "import fairshift.k8s.client\n"
        "print('kubernetes' in sys.modules)\n"
    )
    environ = {**os.environ, "PYTHONPATH": source_root}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environ
    )
    assert done.stdout.strip() == "False"
