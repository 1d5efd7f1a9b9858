"""Workloads keeps a primary copy, tells primary and candidate pods apart, and is idempotent."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from fairshift.k8s.errors import NotFound, NotOwned, Unsupported
from fairshift.k8s.workloads import (
    ROLE_LABEL,
    merge_patch_between,
    revision_of,
    with_role,
)
from tests.fakes import OWNER, FakeObjects, FakeWorkloads, deployment, merge_patch, pod_template

NS = "lending"
TARGET = "credit-scorer"
PRIMARY = "credit-scorer-primary"


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return selector.items() <= labels.items()


def pod_labels(workloads: FakeWorkloads, name: str) -> dict[str, str]:
    stored = workloads.objects.stored("apps/v1", "Deployment", NS, name)
    labels: dict[str, str] = stored["spec"]["template"]["metadata"]["labels"]
    return labels


def adopted(workloads: FakeWorkloads) -> None:
    """The target as the reconciler leaves it after adoption: labelled, with a primary."""
    workloads.add_target(NS, TARGET, "model:1", replicas=3)
    workloads.label_candidate(NS, TARGET)
    state = workloads.target_revision(NS, TARGET)
    assert state is not None
    workloads.ensure_primary(NS, TARGET, state.template, state.replicas, (OWNER,))


@pytest.fixture
def workloads() -> FakeWorkloads:
    return FakeWorkloads()


class TestRevisionHash:
    def test_is_ten_hex_digits_and_ignores_key_order(self) -> None:
        template = pod_template("model:1", {"app": "a", "tier": "b"})
        reordered = {"spec": template["spec"], "metadata": {"labels": {"tier": "b", "app": "a"}}}

        assert len(revision_of(template)) == 10
        int(revision_of(template), 16)
        assert revision_of(template) == revision_of(reordered)

    def test_fairshift_labels_annotations_and_creation_time_do_not_count(self) -> None:
        template = pod_template("model:1", {"app": "a"})
        marked = with_role(template, "primary")
        marked["metadata"]["annotations"] = {"fairshift.io/anything": "x"}
        marked["metadata"]["creationTimestamp"] = None

        assert revision_of(marked) == revision_of(template)

    def test_changes_with_the_pod_spec_and_with_other_labels(self) -> None:
        template = pod_template("model:1", {"app": "a"})

        assert revision_of(pod_template("model:2", {"app": "a"})) != revision_of(template)
        assert revision_of(pod_template("model:1", {"app": "a", "v": "2"})) != revision_of(template)


class TestTargetState:
    def test_absent_target_has_no_state(self, workloads: FakeWorkloads) -> None:
        assert workloads.target_revision(NS, TARGET) is None
        assert workloads.deployment_available(NS, TARGET) is False

    def test_reports_revision_replicas_selector_and_availability(
        self, workloads: FakeWorkloads
    ) -> None:
        stored = workloads.add_target(NS, TARGET, "model:1", replicas=3)
        state = workloads.target_revision(NS, TARGET)

        assert state is not None
        assert state.revision == revision_of(stored["spec"]["template"])
        assert (state.replicas, state.available_replicas, state.available) == (3, 3, True)
        assert state.selector == {"app": TARGET}
        assert state.template == stored["spec"]["template"]

    def test_a_new_revision_is_unavailable_until_rolled_out(self) -> None:
        workloads = FakeWorkloads(on_demand=True)
        workloads.add_target(NS, TARGET, "model:1")
        before = workloads.target_revision(NS, TARGET)
        workloads.set_image(NS, TARGET, "model:2")
        during = workloads.target_revision(NS, TARGET)
        workloads.settle(NS, TARGET)

        assert before is not None and during is not None
        assert during.revision != before.revision
        assert (during.observed, during.available) == (False, False)
        assert workloads.deployment_available(NS, TARGET) is True

    def test_old_pods_still_running_mean_not_available(self, workloads: FakeWorkloads) -> None:
        workloads.add_target(NS, TARGET, "model:1", replicas=2)
        workloads.objects.objects[("apps/v1", "Deployment", NS, TARGET)]["status"]["replicas"] = 3

        assert workloads.deployment_available(NS, TARGET) is False


class TestCandidateLabel:
    def test_labels_the_target_pods_once_without_a_new_revision(
        self, workloads: FakeWorkloads
    ) -> None:
        workloads.add_target(NS, TARGET, "model:1")
        before = workloads.target_revision(NS, TARGET)

        assert workloads.label_candidate(NS, TARGET) is True
        assert workloads.label_candidate(NS, TARGET) is False
        after = workloads.target_revision(NS, TARGET)
        assert before is not None and after is not None
        assert after.revision == before.revision
        assert pod_labels(workloads, TARGET) == {"app": TARGET, ROLE_LABEL: "candidate"}
        assert after.selector == {"app": TARGET}
        assert len(workloads.objects.writes_of("Deployment", "patch")) == 1

    def test_refuses_selectors_a_service_cannot_express(self, workloads: FakeWorkloads) -> None:
        body = deployment(NS, TARGET, "model:1")
        body["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
        workloads.objects.seed(body)

        with pytest.raises(Unsupported, match="matchExpressions"):
            workloads.label_candidate(NS, TARGET)


class TestPrimary:
    def test_is_a_copy_of_the_target_selecting_only_primary_pods(
        self, workloads: FakeWorkloads
    ) -> None:
        adopted(workloads)
        primary = workloads.objects.stored("apps/v1", "Deployment", NS, PRIMARY)
        target_state = workloads.target_revision(NS, TARGET)
        primary_state = workloads.primary_state(NS, TARGET)

        assert target_state is not None and primary_state is not None
        assert primary_state.revision == target_state.revision
        assert primary["spec"]["selector"] == {
            "matchLabels": {"app": TARGET, ROLE_LABEL: "primary"}
        }
        assert primary["spec"]["replicas"] == 3
        assert primary["spec"]["strategy"] == {"type": "RollingUpdate"}
        assert primary["metadata"]["ownerReferences"] == [OWNER]
        assert pod_labels(workloads, PRIMARY) == {"app": TARGET, ROLE_LABEL: "primary"}
        assert not selects(
            primary["spec"]["selector"]["matchLabels"], pod_labels(workloads, TARGET)
        )

    def test_an_existing_primary_is_left_as_it_is(self, workloads: FakeWorkloads) -> None:
        adopted(workloads)
        before = workloads.primary_state(NS, TARGET)

        created = workloads.ensure_primary(
            NS, TARGET, pod_template("model:9", {"app": TARGET}), 7, (OWNER,)
        )

        assert created is False
        assert workloads.primary_state(NS, TARGET) == before

    def test_a_primary_of_someone_else_is_not_taken_over(self, workloads: FakeWorkloads) -> None:
        workloads.add_target(NS, TARGET, "model:1")
        workloads.objects.seed(deployment(NS, PRIMARY, "model:0"))

        with pytest.raises(NotOwned):
            workloads.ensure_primary(NS, TARGET, pod_template("m", {"app": TARGET}), 1, (OWNER,))

    def test_needs_the_target(self, workloads: FakeWorkloads) -> None:
        with pytest.raises(NotFound):
            workloads.ensure_primary(NS, TARGET, pod_template("m", {"app": TARGET}), 1, (OWNER,))


class TestPromotion:
    def test_copies_the_candidate_template_and_keeps_the_primary_label(
        self, workloads: FakeWorkloads
    ) -> None:
        adopted(workloads)
        workloads.set_image(NS, TARGET, "model:2")
        candidate = workloads.target_revision(NS, TARGET)
        assert candidate is not None

        assert workloads.promote_template(NS, TARGET, candidate.template) is True
        primary = workloads.primary_state(NS, TARGET)
        assert primary is not None
        assert primary.revision == candidate.revision
        assert pod_labels(workloads, PRIMARY)[ROLE_LABEL] == "primary"
        assert workloads.promote_template(NS, TARGET, candidate.template) is False

    def test_fields_the_candidate_dropped_are_dropped(self, workloads: FakeWorkloads) -> None:
        adopted(workloads)
        key = ("apps/v1", "Deployment", NS, PRIMARY)
        workloads.objects.objects[key]["spec"]["template"]["metadata"]["annotations"] = {"a": "b"}
        workloads.objects.objects[key]["spec"]["template"]["spec"]["nodeSelector"] = {"gpu": "1"}
        candidate = workloads.target_revision(NS, TARGET)
        assert candidate is not None

        workloads.promote_template(NS, TARGET, candidate.template)

        template = workloads.objects.stored(*key)["spec"]["template"]
        assert "annotations" not in template["metadata"]
        assert "nodeSelector" not in template["spec"]
        assert revision_of(template) == candidate.revision

    def test_a_concurrent_change_is_retried_on_a_fresh_read(self, workloads: FakeWorkloads) -> None:
        adopted(workloads)
        workloads.set_image(NS, TARGET, "model:2")
        candidate = workloads.target_revision(NS, TARGET)
        assert candidate is not None
        someone = {"metadata": {"labels": {"team": "risk"}}}
        workloads.objects.interleave(
            "patch",
            "Deployment",
            lambda: workloads.objects.patch("apps/v1", "Deployment", NS, PRIMARY, someone),
        )

        workloads.promote_template(NS, TARGET, candidate.template)

        primary = workloads.objects.stored("apps/v1", "Deployment", NS, PRIMARY)
        assert primary["metadata"]["labels"]["team"] == "risk"
        assert revision_of(primary["spec"]["template"]) == candidate.revision
        assert [w.name for w in workloads.objects.rejected] == [PRIMARY]  # lost the race once


class TestScaling:
    def test_scales_and_then_does_nothing(self, workloads: FakeWorkloads) -> None:
        workloads.add_target(NS, TARGET, "model:1", replicas=3)

        assert workloads.scale(NS, TARGET, 0) is True
        assert workloads.scale(NS, TARGET, 0) is False
        state = workloads.target_revision(NS, TARGET)
        assert state is not None and state.replicas == 0 and state.available

    def test_a_missing_deployment_is_not_found(self, workloads: FakeWorkloads) -> None:
        with pytest.raises(NotFound):
            workloads.scale(NS, TARGET, 1)


class TestServices:
    def service(self, workloads: FakeWorkloads, name: str) -> dict[str, Any]:
        return workloads.objects.stored("v1", "Service", NS, name)

    def test_each_service_selects_exactly_its_pods(self, workloads: FakeWorkloads) -> None:
        adopted(workloads)
        names = workloads.ensure_services(
            NS, TARGET, 80, 8080, {"app": TARGET}, (OWNER,), shared=True
        )
        primary_pods, candidate_pods = pod_labels(workloads, PRIMARY), pod_labels(workloads, TARGET)

        def selector(name: str) -> dict[str, str]:
            found: dict[str, str] = self.service(workloads, name)["spec"]["selector"]
            return found

        assert selects(selector(names.primary), primary_pods)
        assert not selects(selector(names.primary), candidate_pods)
        assert selects(selector(names.canary), candidate_pods)
        assert not selects(selector(names.canary), primary_pods)
        assert selects(selector(names.shared), primary_pods)
        assert selects(selector(names.shared), candidate_pods)
        assert self.service(workloads, names.canary)["spec"]["ports"] == [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
        ]
        assert self.service(workloads, names.canary)["metadata"]["ownerReferences"] == [OWNER]

    def test_only_two_services_without_the_replicas_router(self, workloads: FakeWorkloads) -> None:
        workloads.ensure_services(NS, TARGET, 8080, None, {"app": TARGET}, (OWNER,))

        created = [w.name for w in workloads.objects.writes_of("Service", "create")]
        assert created == ["credit-scorer-primary", "credit-scorer-canary"]
        port = self.service(workloads, "credit-scorer-primary")["spec"]["ports"][0]
        assert port["targetPort"] == 8080

    def test_updates_selectors_and_ports_and_is_idempotent(self, workloads: FakeWorkloads) -> None:
        workloads.ensure_services(NS, TARGET, 80, None, {"app": TARGET, "old": "x"}, (OWNER,))
        workloads.ensure_services(NS, TARGET, 81, None, {"app": TARGET}, (OWNER,))
        writes = len(workloads.objects.writes)
        workloads.ensure_services(NS, TARGET, 81, None, {"app": TARGET}, (OWNER,))

        spec = self.service(workloads, "credit-scorer-canary")["spec"]
        assert spec["selector"] == {"app": TARGET, ROLE_LABEL: "candidate"}
        assert spec["ports"][0]["port"] == 81
        assert len(workloads.objects.writes) == writes

    def test_a_users_service_named_like_the_rollout_is_used_as_it_is(
        self, workloads: FakeWorkloads
    ) -> None:
        users = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": TARGET, "namespace": NS},
            "spec": {"selector": {"app": TARGET}, "ports": [{"port": 80}]},
        }
        workloads.objects.seed(users)

        workloads.ensure_services(NS, TARGET, 8080, None, {"app": TARGET}, (OWNER,), shared=True)

        assert self.service(workloads, TARGET)["spec"] == users["spec"]

    def test_a_foreign_primary_service_is_not_taken_over(self, workloads: FakeWorkloads) -> None:
        workloads.objects.seed(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "credit-scorer-primary", "namespace": NS},
                "spec": {"selector": {"app": "other"}},
            }
        )

        with pytest.raises(NotOwned):
            workloads.ensure_services(NS, TARGET, 8080, None, {"app": TARGET}, (OWNER,))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2}}),
        ({"a": [1, 2]}, {"a": [2]}),
        ({"a": {"b": 1}}, {"a": 5}),
        ({}, {"x": {"y": [1]}}),
    ],
)
def test_merge_patch_between_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert merge_patch(copy.deepcopy(old), merge_patch_between(old, new)) == new


def test_fake_objects_start_empty() -> None:
    assert FakeObjects().objects == {}
