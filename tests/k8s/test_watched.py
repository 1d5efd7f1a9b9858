"""WatchedObjects: reads of watched kinds come from the watch, never older than our writes."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.k8s.errors import Conflict
from fairshift.k8s.watched import WatchedObjects
from tests.fakes import FakeObjects

DEPLOYMENT = ("apps/v1", "Deployment")
NS = "lending"


def deployment(name: str, version: str, image: str = "model:v1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": NS, "name": name, "resourceVersion": version},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    }


def image(body: dict[str, Any] | None) -> str:
    assert body is not None
    return str(body["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def api() -> FakeObjects:
    return FakeObjects()


@pytest.fixture
def watched(api: FakeObjects) -> WatchedObjects:
    return WatchedObjects(api, [DEPLOYMENT])


def test_an_object_the_watch_delivered_is_read_without_a_request(
    api: FakeObjects, watched: WatchedObjects
) -> None:
    watched.observe(None, deployment("scorer", "7"))

    assert image(watched.get("apps/v1", "Deployment", NS, "scorer")) == "model:v1"
    assert image(watched.get("apps/v1", "Deployment", NS, "scorer")) == "model:v1"
    assert api.reads == []
    assert watched.served == 2


def test_an_object_not_seen_yet_is_read_once_from_the_api(
    api: FakeObjects, watched: WatchedObjects
) -> None:
    api.seed(deployment("scorer", "7"))

    watched.get("apps/v1", "Deployment", NS, "scorer")
    watched.get("apps/v1", "Deployment", NS, "scorer")

    assert len(api.reads) == 1


def test_a_missing_object_is_asked_for_each_time(api: FakeObjects, watched: WatchedObjects) -> None:
    assert watched.get("apps/v1", "Deployment", NS, "absent") is None
    assert watched.get("apps/v1", "Deployment", NS, "absent") is None
    assert len(api.reads) == 2


def test_kinds_not_watched_are_always_read_from_the_api(
    api: FakeObjects, watched: WatchedObjects
) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": NS, "name": "s"}}
    api.seed(service)
    watched.observe(None, service)

    watched.get("v1", "Service", NS, "s")

    assert api.reads == [("v1", "Service", NS, "s")]


def test_after_our_write_a_late_event_from_before_it_is_not_served(
    api: FakeObjects, watched: WatchedObjects
) -> None:
    api.seed(deployment("scorer", "7"))
    watched.observe(None, deployment("scorer", "7"))

    watched.patch("apps/v1", "Deployment", NS, "scorer", {"spec": {"replicas": 0}})
    watched.observe("MODIFIED", deployment("scorer", "7"))  # delivered late, before the patch
    read = watched.get("apps/v1", "Deployment", NS, "scorer")

    assert read is not None and read["spec"]["replicas"] == 0
    assert len(api.reads) == 1
    watched.observe("MODIFIED", deployment("scorer", "99999", image="model:v3"))
    assert image(watched.get("apps/v1", "Deployment", NS, "scorer")) == "model:v3"
    assert len(api.reads) == 1


def test_a_failed_write_forgets_the_object_so_the_retry_reads_afresh(
    api: FakeObjects, watched: WatchedObjects
) -> None:
    api.seed(deployment("scorer", "7"))
    watched.observe(None, deployment("scorer", "7"))
    api.fail("patch", Conflict("the object has been modified", 409))

    with pytest.raises(Conflict):
        watched.patch("apps/v1", "Deployment", NS, "scorer", {"spec": {"replicas": 0}})
    watched.get("apps/v1", "Deployment", NS, "scorer")

    assert len(api.reads) == 1


def test_an_event_older_than_what_is_kept_does_not_replace_it(watched: WatchedObjects) -> None:
    watched.observe("MODIFIED", deployment("scorer", "12", image="model:v2"))
    watched.observe("MODIFIED", deployment("scorer", "11", image="model:v1"))
    assert image(watched.get("apps/v1", "Deployment", NS, "scorer")) == "model:v2"


def test_a_deleted_object_is_read_from_the_api_again(
    api: FakeObjects, watched: WatchedObjects
) -> None:
    watched.observe(None, deployment("scorer", "7"))
    watched.observe("DELETED", deployment("scorer", "8"))

    assert watched.get("apps/v1", "Deployment", NS, "scorer") is None
    assert len(api.reads) == 1


def test_callers_get_copies(watched: WatchedObjects) -> None:
    watched.observe(None, deployment("scorer", "7"))
    first = watched.get("apps/v1", "Deployment", NS, "scorer")
    assert first is not None
    first["spec"]["replicas"] = 5
    second = watched.get("apps/v1", "Deployment", NS, "scorer")
    assert second is not None and "replicas" not in second["spec"]


def test_managed_fields_are_not_kept(api: FakeObjects, watched: WatchedObjects) -> None:
    """Most of a Deployment's body; no reconcile reads them, every read would copy them."""
    body = deployment("scorer", "7")
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    watched.observe(None, body)
    api.seed(deployment("other", "3") | {"metadata": body["metadata"] | {"name": "other"}})

    served = watched.get("apps/v1", "Deployment", NS, "scorer")
    fetched = watched.get("apps/v1", "Deployment", NS, "other")
    again = watched.get("apps/v1", "Deployment", NS, "other")

    assert served is not None and "managedFields" not in served["metadata"]
    assert fetched is not None and again is not None
    assert "managedFields" not in again["metadata"]
    assert body["metadata"]["managedFields"]  # the caller's body is left alone
