"""What the operator writes into a ModelRollout's status survives the real API server.

A structural schema prunes every field it does not declare. An object declared with neither
properties nor a value schema is stored as ``{}``, so a map written into it (the alpha ledger
that carries a candidate's evidence from one analysis window to the next, the guard's detector
state) would be lost on every write without an error. Unit tests use fakes that keep
everything; only the real API server shows what is stored.
"""

from __future__ import annotations

import json

import pytest

from e2e import scenario_fixtures
from e2e.helpers import Kubectl
from e2e.scenario_fixtures import ROLLOUT, rollout
from fairshift.api.status import ModelRolloutStatus

pytestmark = pytest.mark.e2e

crd = scenario_fixtures.crd

LEDGER = {
    "revision": "7d9f",
    "windows": 2,
    "carried": {"equal-opportunity/sex=F/below": -1.25, "latency/overall/above": 0.5},
    "current": {"four-fifths/age_band=60+/above": -2.0},
    "budgetUsed": 0.125,
}
GUARD_STATE = {"equal-opportunity/sex=F": {"log_r": 1.5, "looks": 12.0}}


def test_maps_in_status_are_stored_as_written(crd: None, k: Kubectl) -> None:
    k.apply(rollout("http://127.0.0.1:9", steps=[{"setWeight": 10}]))
    status = {"phase": "Guarding", "alphaLedger": LEDGER, "guard": {"state": GUARD_STATE}}
    k(
        "patch",
        "modelrollout",
        ROLLOUT,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )

    stored = (k.get("modelrollout", ROLLOUT) or {}).get("status", {})

    assert stored["alphaLedger"] == LEDGER
    assert stored["guard"]["state"] == GUARD_STATE
    parsed = ModelRolloutStatus.model_validate(stored)
    assert parsed.alpha_ledger is not None and parsed.guard is not None
    assert parsed.alpha_ledger.carried == LEDGER["carried"]
    assert parsed.guard.state == GUARD_STATE
