"""A fake cluster for the CLI commands, and a runner that injects it into a parsed command."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from fairshift.k8s.cli_access import ClusterAccess, Session
from tests.commands.fixtures import (
    NAMESPACE,
    audit_configmap,
    rollout,
    status_fixture,
    synthetic_chain,
)
from tests.fakes import FakeObjects

MODULES = ("plugin", "actions", "audit", "report", "card")
Runner = Callable[..., int]


def build_parser() -> argparse.ArgumentParser:
    """The ``fairshift`` parser with only this suite's subcommands."""
    parser = argparse.ArgumentParser(prog="fairshift")
    subparsers = parser.add_subparsers(dest="command")
    for name in MODULES:
        importlib.import_module(f"fairshift.commands.{name}").register(subparsers)
    return parser


def parse(argv: Sequence[str], objects: FakeObjects, **overrides: Any) -> argparse.Namespace:
    """Parse ``argv`` and point the command at ``objects`` (default namespace ``lending``)."""
    args = build_parser().parse_args(list(argv))
    args.connect = lambda kubeconfig, context: Session(ClusterAccess(objects), NAMESPACE)
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.fixture
def cluster() -> FakeObjects:
    """A cluster holding credit-scorer (in Canary) and its audit chain."""
    objects = FakeObjects()
    objects.seed(rollout(status_fixture()))
    objects.seed(audit_configmap(synthetic_chain()[:14]))
    return objects


@pytest.fixture
def run(cluster: FakeObjects) -> Runner:
    """Run a command line against ``cluster``; keyword arguments override parsed options."""

    def runner(*argv: str, **overrides: Any) -> int:
        args = parse(argv, cluster, **overrides)
        code: int = args.handler(args)
        return code

    return runner
