"""Events, Secrets, ModelRollouts and client configuration: the small adapters."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairshift.k8s.client import load_configuration, make_api_client
from fairshift.k8s.errors import Conflict, KubeError, NotFound
from fairshift.k8s.events import MAX_MESSAGE, EventPoster
from fairshift.k8s.rollouts import Rollouts
from fairshift.k8s.secrets import SecretReader
from tests.fakes import OWNER, FakeObjects

NOW = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
ROLLOUT_KEY = ("fairshift.io/v1alpha1", "ModelRollout", "lending", "credit-scorer")


class TestEvents:
    def post(self, objects: FakeObjects, message: str = "weight 10%") -> dict[str, Any]:
        EventPoster(objects, clock=lambda: NOW).post_event(
            "lending", OWNER, "CanaryStep", message, "Normal"
        )
        return objects.writes_of("Event", "create")[-1].body

    def test_a_core_event_about_the_rollout_from_fairshift(self) -> None:
        event = self.post(FakeObjects())

        assert event["apiVersion"] == "v1"
        assert event["involvedObject"] == {
            "apiVersion": "fairshift.io/v1alpha1",
            "kind": "ModelRollout",
            "name": "credit-scorer",
            "uid": "rollout-uid",
            "namespace": "lending",
        }
        assert (event["reason"], event["message"], event["type"]) == (
            "CanaryStep",
            "weight 10%",
            "Normal",
        )
        assert event["source"] == {"component": "fairshift"}
        assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-11-22T12:00:00Z"
        assert event["eventTime"] == "2026-11-22T12:00:00.123456Z"
        assert event["metadata"]["name"].startswith("credit-scorer.")

    def test_two_events_get_two_names(self) -> None:
        objects = FakeObjects()
        times = iter([NOW, NOW.replace(microsecond=0)])
        poster = EventPoster(objects, clock=lambda: next(times))
        poster.post_event("lending", OWNER, "A", "a")
        poster.post_event("lending", OWNER, "B", "b", "Warning")

        names = {w.name for w in objects.writes_of("Event")}
        assert len(names) == 2

    def test_long_messages_are_cut(self) -> None:
        assert len(self.post(FakeObjects(), "x" * 5000)["message"]) == MAX_MESSAGE

    def test_only_normal_or_warning(self) -> None:
        poster = EventPoster(FakeObjects(), clock=lambda: NOW)

        with pytest.raises(ValueError, match="Normal or Warning"):
            poster.post_event("lending", OWNER, "A", "a", "Error")  # type: ignore[arg-type]


class TestSecrets:
    def secret(self, objects: FakeObjects, data: dict[str, str]) -> None:
        objects.seed(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "hooks", "namespace": "lending"},
                "data": data,
            }
        )

    def test_reads_and_decodes_a_key(self) -> None:
        objects = FakeObjects()
        url = "https://hooks.example.com/T000/B000\n"
        self.secret(objects, {"slack": base64.b64encode(url.encode()).decode()})

        assert SecretReader(objects).read_secret_key("lending", "hooks", "slack") == url.strip()

    def test_a_missing_secret_or_key_is_not_found(self) -> None:
        objects = FakeObjects()
        reader = SecretReader(objects)
        with pytest.raises(NotFound, match="Secret lending/hooks not found"):
            reader.read_secret_key("lending", "hooks", "slack")

        self.secret(objects, {})
        with pytest.raises(NotFound, match="has no key 'slack'"):
            reader.read_secret_key("lending", "hooks", "slack")

    def test_a_value_that_is_not_text_is_an_error(self) -> None:
        objects = FakeObjects()
        self.secret(objects, {"slack": base64.b64encode(b"\xff\xfe").decode()})

        with pytest.raises(KubeError, match="not UTF-8"):
            SecretReader(objects).read_secret_key("lending", "hooks", "slack")


class TestRollouts:
    @pytest.fixture
    def objects(self) -> FakeObjects:
        objects = FakeObjects()
        for namespace in ("lending", "fraud"):
            objects.seed(
                {
                    "apiVersion": "fairshift.io/v1alpha1",
                    "kind": "ModelRollout",
                    "metadata": {"name": "credit-scorer", "namespace": namespace},
                    "spec": {"paused": False},
                    "status": {"phase": "Canary", "currentStep": 1},
                }
            )
        return objects

    def test_get_and_list(self, objects: FakeObjects) -> None:
        rollouts = Rollouts(objects)

        found = rollouts.get_rollout("lending", "credit-scorer")
        assert found is not None and found["status"]["phase"] == "Canary"
        assert rollouts.get_rollout("lending", "other") is None
        assert len(rollouts.list_rollouts()) == 2
        assert [r["metadata"]["namespace"] for r in rollouts.list_rollouts("fraud")] == ["fraud"]

    def test_status_is_merge_patched_on_the_subresource(self, objects: FakeObjects) -> None:
        Rollouts(objects).patch_status(
            "lending", "credit-scorer", {"phase": "Paused", "currentStep": None}
        )

        stored = objects.stored(*ROLLOUT_KEY)
        assert stored["status"] == {"phase": "Paused"}
        assert [w.verb for w in objects.writes] == ["patch_status"]

    def test_annotations_are_set_and_removed(self, objects: FakeObjects) -> None:
        rollouts = Rollouts(objects)
        rollouts.patch_annotations("lending", "credit-scorer", {"fairshift.io/action": "promote"})
        rollouts.patch_annotations("lending", "credit-scorer", {"fairshift.io/action": None})

        assert objects.stored(*ROLLOUT_KEY)["metadata"].get("annotations") == {}

    def test_an_action_is_consumed_only_by_the_reader_of_the_latest_version(
        self, objects: FakeObjects
    ) -> None:
        rollouts = Rollouts(objects)
        stale = objects.stored(*ROLLOUT_KEY)["metadata"]["resourceVersion"]
        rollouts.patch_annotations("lending", "credit-scorer", {"fairshift.io/action": "abort"})

        with pytest.raises(Conflict):
            rollouts.patch_annotations(
                "lending", "credit-scorer", {"fairshift.io/action": None}, resource_version=stale
            )


class TestClientConfiguration:
    def kubeconfig(self, tmp_path: Path, server: str) -> Path:
        path = tmp_path / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": server}}],
                    "users": [{"name": "u", "user": {"token": "t0k3n"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        return path

    def test_reads_the_kubeconfig_named_by_the_environment(self, tmp_path: Path) -> None:
        path = self.kubeconfig(tmp_path, "https://127.0.0.1:16443")

        configuration = load_configuration(environ={"KUBECONFIG": str(path)})

        assert configuration.host == "https://127.0.0.1:16443"

    def test_an_explicit_kubeconfig_wins_even_in_a_pod(self, tmp_path: Path) -> None:
        path = self.kubeconfig(tmp_path, "https://10.0.0.1:6443")
        environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

        assert load_configuration(str(path), environ=environ).host == "https://10.0.0.1:6443"

    def test_the_client_keeps_as_many_connections_as_its_caller_has_threads(
        self, tmp_path: Path
    ) -> None:
        path = self.kubeconfig(tmp_path, "https://127.0.0.1:16443")

        client = make_api_client(str(path), pool_size=64)
        default = make_api_client(str(path))

        assert client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 64
        assert default.rest_client.pool_manager.connection_pool_kw["maxsize"] < 64

    def test_no_credentials_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(KubeError, match="no usable Kubernetes credentials"):
            load_configuration(environ={"KUBECONFIG": str(tmp_path / "missing")})
