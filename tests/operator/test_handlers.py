"""The handlers' status patch (only what changed, removals as nulls) and their wiring."""

from __future__ import annotations

from fairshift.evidence.sink import MlflowSink
from fairshift.handlers import OperatorConfig, build_dependencies, status_patch
from fairshift.notify.fanout import FanOut
from fairshift.notify.webhook import Notifier
from tests.fakes import FakeObjects


def test_an_unchanged_status_patches_nothing() -> None:
    status = {"phase": "Idle", "canaryWeight": 0, "conditions": [{"type": "Paused"}]}
    assert status_patch(dict(status), status) == {}


def test_changed_and_removed_keys_only() -> None:
    old = {"phase": "Canary", "candidateRevision": "abc", "canaryWeight": 10}
    new = {"phase": "Succeeded", "canaryWeight": 10}
    assert status_patch(new, old) == {"phase": "Succeeded", "candidateRevision": None}


def test_nested_removals_are_nulls_so_a_reset_detector_state_is_dropped() -> None:
    cell = {"upper@1": 3.2, "looks": 12.0}
    old = {"phase": "Guarding", "guard": {"looks": 12, "state": {"tpr|sex=F": cell}}}
    new = {"phase": "Guarding", "guard": {"looks": 13, "state": {}}}
    patch = status_patch(new, old)
    assert patch == {"guard": {"looks": 13, "state": {"tpr|sex=F": None}}}
    # lists are replaced whole, as JSON merge patch does
    assert status_patch({"conditions": [{"type": "A"}]}, {"conditions": [{"type": "B"}]}) == {
        "conditions": [{"type": "A"}]
    }


def test_decisions_go_to_the_webhooks_and_to_mlflow() -> None:
    deps = build_dependencies(OperatorConfig(), FakeObjects())  # type: ignore[arg-type]

    assert isinstance(deps.notifier, FanOut)
    assert [type(n) for n in deps.notifier.notifiers] == [Notifier, MlflowSink]
