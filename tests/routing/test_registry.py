"""The registry picks the router the spec names and refuses kinds it does not know."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from fairshift.api.spec import Routing
from fairshift.routing.base import RoutingError
from fairshift.routing.gatewayapi import GatewayAPIRouter
from fairshift.routing.istio import IstioRouter
from fairshift.routing.registry import ROUTERS, make_router
from fairshift.routing.replicas import ReplicasRouter
from tests.fakes import FakeObjects, route_target


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"gatewayAPI": {"parentRefs": [{"name": "public"}]}}, GatewayAPIRouter),
        ({"istio": {"hosts": ["credit.example.com"]}}, IstioRouter),
        ({"replicas": {}}, ReplicasRouter),
    ],
)
def test_the_spec_chooses_the_router(routing: dict[str, Any], expected: type) -> None:
    assert isinstance(make_router(route_target(routing), FakeObjects()), expected)


def test_every_kind_the_api_allows_has_a_router() -> None:
    kind = vars(Routing)["kind"]
    assert isinstance(kind, property) and kind.fget is not None
    kinds = typing.get_args(typing.get_type_hints(kind.fget)["return"])

    assert set(kinds) == set(ROUTERS)


def test_an_unknown_kind_is_an_error_not_a_default() -> None:
    target = route_target({"replicas": {}})

    with pytest.raises(RoutingError, match="unknown router 'replicas'; known routers: istio"):
        make_router(target, FakeObjects(), routers={"istio": IstioRouter})
