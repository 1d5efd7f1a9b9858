"""The planner's working copy: the status being built and what the plan collects.

A ``Draft`` lives for one call of ``plan``. Its methods change only the draft; nothing here
touches the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import Condition, ConditionType, ModelRolloutStatus, Phase
from fairshift.planning.plan import AuditEntry, EventKind, KubeEvent, Plan, Write

MESSAGE_LIMIT = 1024


@dataclass
class Draft:
    """The status being decided, with the records, writes and Events gathered so far."""

    spec: ModelRolloutSpec
    status: ModelRolloutStatus
    now: datetime
    namespace: str
    name: str
    records: list[AuditEntry] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    events: list[KubeEvent] = field(default_factory=list)
    wait: float | None = None  # seconds until the rollout wants another look

    @property
    def phase(self) -> Phase:
        return self.status.phase

    def set(self, **changes: Any) -> None:
        """Change status fields (python names)."""
        self.status = self.status.model_copy(update=changes)

    def say(self, message: str, reason: str | None = None) -> None:
        """What a person reads in status now (no transition)."""
        if reason is None:
            self.set(message=message)
        else:
            self.set(message=message, reason=reason)

    def event(self, kind: EventKind, reason: str, message: str) -> None:
        self.events.append(KubeEvent(kind, reason, message[:MESSAGE_LIMIT]))

    def write(self, write: Write) -> None:
        """Plan a write once (the same write asked for twice in a tick is done once)."""
        if write not in self.writes:
            self.writes.append(write)

    def check_within(self, seconds: float) -> None:
        """Look again within ``seconds`` (the earliest wish wins)."""
        self.wait = seconds if self.wait is None else min(self.wait, seconds)

    def condition(self, kind: ConditionType, value: str, reason: str, message: str) -> None:
        self.status = with_condition(self.status, kind, value, reason, message, self.now)

    def plan(self, default_wait: float) -> Plan:
        """The plan, looking again at the earliest wish or ``default_wait`` (whichever is
        sooner): the target Deployment can change at any time, and nothing else wakes us."""
        wait = default_wait if self.wait is None else min(self.wait, default_wait)
        return Plan(
            status=self.status,
            records=self.records,
            writes=self.writes,
            events=self.events,
            next_check=self.now + timedelta(seconds=wait),
        )


def with_condition(
    status: ModelRolloutStatus,
    kind: ConditionType,
    value: str,
    reason: str,
    message: str,
    now: datetime,
) -> ModelRolloutStatus:
    """``status`` with one condition set; its transition time moves only when its value does."""
    previous = next((c for c in status.conditions if c.type == kind), None)
    changed = previous is None or previous.status != value
    stamp = now if changed or previous is None else previous.last_transition_time
    updated = Condition(
        type=kind,
        status=value,
        reason=reason,
        message=message[:1000],
        last_transition_time=stamp,
    )
    others = [c for c in status.conditions if c.type != kind]
    return status.model_copy(
        update={"conditions": sorted([*others, updated], key=lambda c: c.type)}
    )
