"""The status field that keeps a candidate revision's false-rollback budget across windows."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fairshift.api.status import ModelRolloutStatus


def test_the_ledger_round_trips_with_negative_evidence() -> None:
    written = {
        "alphaLedger": {
            "revision": "7f9c",
            "windows": 2,
            "carried": {"accuracy/sex=F/below": -0.75},
            "current": {"accuracy/sex=F/below": 1.5},
            "budgetUsed": 0.25,
        }
    }
    status = ModelRolloutStatus.model_validate(written)
    assert status.alpha_ledger is not None
    assert status.alpha_ledger.carried["accuracy/sex=F/below"] == -0.75
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert dumped["alphaLedger"] == written["alphaLedger"]


def test_budget_used_is_a_share() -> None:
    with pytest.raises(ValidationError):
        ModelRolloutStatus.model_validate({"alphaLedger": {"budgetUsed": 1.5}})
