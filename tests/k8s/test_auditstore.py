"""The audit store appends chained JSON lines to a bounded ConfigMap, safely under races."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from fairshift.k8s.auditstore import (
    DROPPED_KEY,
    DROPPED_LAST_KEY,
    RECORDS_KEY,
    SUMMARY_KEY,
    AuditStore,
    bounded,
)
from fairshift.k8s.errors import Conflict, NotOwned
from tests.fakes import OWNER, FakeObjects

NS, ROLLOUT = "lending", "credit-scorer"
KEY = ("v1", "ConfigMap", NS, "credit-scorer-audit")


def chained(event: str) -> Any:
    """A builder of records that hold their predecessor's hash (like the audit chain)."""

    def build(previous: dict[str, Any] | None) -> dict[str, Any]:
        prev = previous["hash"] if previous else "genesis"
        digest = hashlib.sha256(f"{prev}|{event}".encode()).hexdigest()
        return {"event": event, "prev": prev, "hash": digest}

    return build


def chain_is_intact(records: list[dict[str, Any]], first_prev: str = "genesis") -> bool:
    prev = first_prev
    for record in records:
        if record["prev"] != prev:
            return False
        prev = record["hash"]
    return True


class TestAppending:
    def test_first_append_creates_an_owned_config_map(self) -> None:
        objects = FakeObjects()
        stored = AuditStore(objects).append(NS, ROLLOUT, chained("start"), (OWNER,))

        config_map = objects.stored(*KEY)
        assert config_map["metadata"]["ownerReferences"] == [OWNER]
        assert json.loads(config_map["data"][RECORDS_KEY]) == stored
        assert stored["prev"] == "genesis"

    def test_records_read_back_in_order_and_chained(self) -> None:
        objects = FakeObjects()
        store = AuditStore(objects)
        for event in ("start", "canary-10", "promote"):
            store.append(NS, ROLLOUT, chained(event), (OWNER,))

        records = store.read_records(NS, ROLLOUT)
        assert [r["event"] for r in records] == ["start", "canary-10", "promote"]
        assert chain_is_intact(records)

    def test_a_concurrent_append_is_retried_and_the_record_rebuilt(self) -> None:
        objects = FakeObjects()
        store = AuditStore(objects)
        store.append(NS, ROLLOUT, chained("start"), (OWNER,))
        objects.interleave(
            "patch", "ConfigMap", lambda: store.append(NS, ROLLOUT, chained("other"), (OWNER,))
        )

        store.append(NS, ROLLOUT, chained("mine"), (OWNER,))

        records = store.read_records(NS, ROLLOUT)
        assert [r["event"] for r in records] == ["start", "other", "mine"]
        assert chain_is_intact(records)
        assert len(objects.rejected) == 1

    def test_a_concurrent_first_append_is_retried(self) -> None:
        objects = FakeObjects()
        store = AuditStore(objects)
        objects.interleave(
            "create", "ConfigMap", lambda: store.append(NS, ROLLOUT, chained("other"), (OWNER,))
        )

        store.append(NS, ROLLOUT, chained("mine"), (OWNER,))

        assert [r["event"] for r in store.read_records(NS, ROLLOUT)] == ["other", "mine"]

    def test_gives_up_when_every_attempt_conflicts(self) -> None:
        objects = FakeObjects()
        store = AuditStore(objects)
        store.append(NS, ROLLOUT, chained("start"), (OWNER,))
        objects.fail("patch", Conflict("modified", 409), times=100)

        with pytest.raises(Conflict, match="kept changing"):
            store.append(NS, ROLLOUT, chained("late"), (OWNER,))

    def test_a_config_map_of_someone_else_is_not_written(self) -> None:
        objects = FakeObjects()
        objects.seed(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": KEY[3], "namespace": NS}}
        )

        with pytest.raises(NotOwned):
            AuditStore(objects).append(NS, ROLLOUT, chained("start"), (OWNER,))

    def test_no_records_before_the_first_append(self) -> None:
        assert AuditStore(FakeObjects()).read_records(NS, ROLLOUT) == []


class TestBound:
    def test_oldest_records_are_dropped_and_the_drop_noted(self) -> None:
        objects = FakeObjects()
        store = AuditStore(objects, max_bytes=700)
        for index in range(10):
            store.append(NS, ROLLOUT, chained(f"event-{index}"), (OWNER,))

        data = objects.stored(*KEY)["data"]
        records = store.read_records(NS, ROLLOUT)
        trail = store.trail(NS, ROLLOUT)
        dropped, last_dropped = trail.dropped, trail.dropped_last
        assert len(data[RECORDS_KEY].encode()) <= 700
        assert records[-1]["event"] == "event-9"
        assert dropped == 10 - len(records) == int(data[DROPPED_KEY])
        assert last_dropped == json.loads(data[DROPPED_LAST_KEY])
        assert last_dropped is not None
        assert chain_is_intact(records, first_prev=last_dropped["hash"])

    def test_the_trimmed_span_is_rolled_into_a_small_summary(self) -> None:
        objects = FakeObjects()
        store = AuditStore(objects, max_bytes=900)
        kinds = ["hold", "guard-attest", "guard-breached", "guard-fallback", "revive-guarded"]
        for index in range(60):
            action = kinds[index % len(kinds)]

            def build(
                previous: dict[str, Any] | None, index: int = index, action: str = action
            ) -> dict[str, Any]:
                record = chained(f"event-{index}")(previous)
                record.update(action=action, seq=index + 1, time=f"2026-12-01T00:{index:02d}:00Z")
                if action == "revive-guarded":
                    record["request"] = f"r{index}"
                return record

            store.append(NS, ROLLOUT, build, (OWNER,))
        trail = store.trail(NS, ROLLOUT)
        summary = trail.summary
        assert summary is not None and summary["records"] == trail.dropped > 12
        assert summary["firstSeq"] == 1 and summary["lastSeq"] == trail.dropped
        assert summary["firstTime"] == "2026-12-01T00:00:00Z"
        assert summary["lastHash"] == trail.dropped_last["hash"] == trail.first_prev_hash
        assert sum(summary["actions"].values()) == trail.dropped
        assert summary["breaches"] == summary["actions"]["guard-breached"] + summary["actions"].get(
            "guard-fallback", 0
        )
        assert summary["attestations"] == summary["actions"]["guard-attest"]
        assert summary["requests"] == summary["actions"]["revive-guarded"]
        assert len(objects.stored(*KEY)["data"][SUMMARY_KEY]) < 400  # small, however long

    def test_a_record_larger_than_the_bound_is_refused(self) -> None:
        store = AuditStore(FakeObjects(), max_bytes=50)

        with pytest.raises(ValueError, match="exceeds the store's bound"):
            store.append(NS, ROLLOUT, chained("x" * 100))

    @pytest.mark.parametrize("max_bytes", [1, 4, 7, 100])
    def test_bounded_keeps_a_newest_suffix_that_fits(self, max_bytes: int) -> None:
        lines = ["aa", "bbb", "c", "dddd"]
        dropped, kept = bounded(lines, max_bytes)

        assert dropped + kept == lines
        assert kept[-1] == "dddd"
        assert sum(len(line) + 1 for line in kept) <= max(max_bytes, 5)
        if dropped:
            assert sum(len(line) + 1 for line in [dropped[-1], *kept]) > max_bytes
