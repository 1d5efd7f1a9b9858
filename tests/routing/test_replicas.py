"""The replicas router approximates the canary weight by scaling the two Deployments."""

from __future__ import annotations

from typing import Any

import pytest

from fairshift.routing.base import ALL_TO_PRIMARY, RoutingError, Weights
from fairshift.routing.replicas import ReplicaSplit, ReplicasRouter, split_replicas
from tests.fakes import FakeObjects, deployment, route_target

REPLICAS: dict[str, Any] = {"replicas": {}}


def replicas(objects: FakeObjects, name: str) -> int:
    count: int = objects.stored("apps/v1", "Deployment", "lending", name)["spec"]["replicas"]
    return count


def counts(objects: FakeObjects) -> tuple[int, int]:
    return replicas(objects, "credit-scorer-primary"), replicas(objects, "credit-scorer")


@pytest.fixture
def two_deployments(objects: FakeObjects) -> FakeObjects:
    objects.seed(deployment("lending", "credit-scorer-primary", "model:1", replicas=4))
    objects.seed(deployment("lending", "credit-scorer", "model:2", replicas=0))
    return objects


def router(objects: FakeObjects, routing: dict[str, Any] = REPLICAS) -> ReplicasRouter:
    return ReplicasRouter(route_target(routing), objects)


class TestSplittingReplicas:
    @pytest.mark.parametrize(
        ("total", "canary", "expected"),
        [
            (4, 0, ReplicaSplit(4, 0)),
            (4, 25, ReplicaSplit(3, 1)),
            (4, 50, ReplicaSplit(2, 2)),
            (4, 90, ReplicaSplit(1, 3)),
            (4, 100, ReplicaSplit(0, 4)),
            (10, 5, ReplicaSplit(9, 1)),
            (10, 1, ReplicaSplit(9, 1)),
            (1, 5, ReplicaSplit(1, 1)),
            (1, 100, ReplicaSplit(0, 1)),
        ],
    )
    def test_closest_split_with_one_candidate_as_soon_as_the_canary_gets_traffic(
        self, total: int, canary: int, expected: ReplicaSplit
    ) -> None:
        assert split_replicas(total, canary) == expected

    def test_a_total_below_one_is_refused(self) -> None:
        with pytest.raises(RoutingError):
            split_replicas(0, 10)


class TestScaling:
    def test_the_primary_replicas_are_the_total_by_default(
        self, two_deployments: FakeObjects
    ) -> None:
        router(two_deployments).set_weights(Weights(75, 25))

        assert counts(two_deployments) == (3, 1)

    def test_the_total_stays_fixed_across_steps_and_back_to_primary(
        self, two_deployments: FakeObjects
    ) -> None:
        for canary in (10, 25, 50, 90, 0):
            router(two_deployments).set_weights(Weights.canary_share(canary))
            assert sum(counts(two_deployments)) in (4, 5)

        assert counts(two_deployments) == (4, 0)

    def test_the_spec_total_wins(self, two_deployments: FakeObjects) -> None:
        router(two_deployments, {"replicas": {"totalReplicas": 10}}).set_weights(Weights(80, 20))

        assert counts(two_deployments) == (8, 2)

    def test_the_candidate_grows_before_the_primary_shrinks(
        self, two_deployments: FakeObjects
    ) -> None:
        router(two_deployments).set_weights(Weights(50, 50))

        assert [w.name for w in two_deployments.writes_of("Deployment")] == [
            "credit-scorer",
            "credit-scorer-primary",
        ]

    def test_the_primary_grows_before_the_candidate_shrinks(
        self, two_deployments: FakeObjects
    ) -> None:
        router(two_deployments).set_weights(Weights(50, 50))
        two_deployments.writes.clear()
        router(two_deployments).set_weights(ALL_TO_PRIMARY)

        assert [w.name for w in two_deployments.writes_of("Deployment")] == [
            "credit-scorer-primary",
            "credit-scorer",
        ]

    def test_writing_the_same_split_again_sends_nothing(self, two_deployments: FakeObjects) -> None:
        router(two_deployments).set_weights(Weights(75, 25))
        before = len(two_deployments.writes)
        router(two_deployments).set_weights(Weights(75, 25))

        assert len(two_deployments.writes) == before

    def test_mirroring_is_refused(self, two_deployments: FakeObjects) -> None:
        with pytest.raises(RoutingError, match="cannot mirror"):
            router(two_deployments).set_weights(Weights(100, 0, 50))
        assert two_deployments.writes == []

    def test_a_missing_deployment_is_an_error(self, objects: FakeObjects) -> None:
        objects.seed(deployment("lending", "credit-scorer-primary", "model:1"))

        with pytest.raises(RoutingError, match="credit-scorer not found"):
            router(objects).set_weights(Weights(90, 10))


class TestReadingAndVerifying:
    def test_weights_read_back_as_written_while_the_counts_are_unchanged(
        self, two_deployments: FakeObjects
    ) -> None:
        router(two_deployments).set_weights(Weights(90, 10))

        assert router(two_deployments).get_weights() == Weights(90, 10)
        assert router(two_deployments).effective_weights() == Weights(75, 25)

    def test_weights_are_the_share_of_replicas_once_someone_scaled(
        self, two_deployments: FakeObjects
    ) -> None:
        router(two_deployments).set_weights(Weights(90, 10))
        two_deployments.patch(
            "apps/v1", "Deployment", "lending", "credit-scorer", {"spec": {"replicas": 3}}
        )

        assert router(two_deployments).get_weights() == Weights(50, 50)

    def test_without_a_write_the_weights_are_the_share_of_replicas(
        self, two_deployments: FakeObjects
    ) -> None:
        two_deployments.patch(
            "apps/v1", "Deployment", "lending", "credit-scorer", {"spec": {"replicas": 1}}
        )

        assert router(two_deployments).get_weights() == Weights(80, 20)

    def test_no_weights_without_the_deployments(self, objects: FakeObjects) -> None:
        assert router(objects).get_weights() is None
        assert router(objects).effective_weights() is None
        assert router(objects).verify() is None

    def test_cannot_tell_before_the_first_write(self, two_deployments: FakeObjects) -> None:
        assert router(two_deployments).verify() is None

    def test_true_after_a_write_false_after_someone_scales(
        self, two_deployments: FakeObjects
    ) -> None:
        router(two_deployments).set_weights(Weights(50, 50))
        assert router(two_deployments).verify() is True

        two_deployments.patch(
            "apps/v1", "Deployment", "lending", "credit-scorer", {"spec": {"replicas": 5}}
        )
        assert router(two_deployments).verify() is False

    def test_finalize_gives_every_replica_to_primary(self, two_deployments: FakeObjects) -> None:
        router(two_deployments).set_weights(Weights(50, 50))
        router(two_deployments).finalize()

        assert counts(two_deployments) == (4, 0)
        assert router(two_deployments).get_weights() == ALL_TO_PRIMARY


def test_needs_the_deployment_names(objects: FakeObjects) -> None:
    target = route_target(REPLICAS)
    unnamed = type(target)(**{**target.__dict__, "candidate_deployment": ""})

    with pytest.raises(RoutingError, match="Deployment names"):
        ReplicasRouter(unnamed, objects)
