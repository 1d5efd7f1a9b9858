"""The handlers' status patch: only what changed, and removals as nulls."""

from __future__ import annotations

from fairshift.handlers import status_patch


def test_an_unchanged_status_patches_nothing() -> None:
    status = {"phase": "Idle", "canaryWeight": 0, "conditions": [{"type": "Paused"}]}
    assert status_patch(dict(status), status) == {}


def test_changed_and_removed_keys_only() -> None:
    old = {"phase": "Canary", "candidateRevision": "abc", "canaryWeight": 10}
    new = {"phase": "Succeeded", "canaryWeight": 10}
    assert status_patch(new, old) == {"phase": "Succeeded", "candidateRevision": None}
