"""The ``guard`` block: how the promoted model stays guarded after its rollout."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from fairshift.api.analysis import Gate
from fairshift.api.durations import parse_duration
from fairshift.api.schema import Duration, Model, rules

BreachResponse = Literal["alert", "rollback", "escalate", "degrade"]


class GuardGate(Model):
    """How the guard answers a breach of one gate (by its name in ``analysis.gates``)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$", max_length=63)
    on_breach: BreachResponse


class Guard(Model):
    """The continuous guard after promotion: the rollout's gates keep judging the live model.

    Each look covers the live model's traffic since the previous look (``interval``), shifted
    back by ``labelDelay`` when outcomes arrive late; relative gates compare it with the
    stable model's evidence frozen at promotion. ``falseAlarmDays``: at most one false breach
    per this many days per model on average; ``warningDays`` the same for warnings. A breach
    of a critical gate switches back to the last known good revision unless ``onBreach`` (or
    the gate's own entry in ``gates``) says ``alert`` or ``escalate`` (keep serving, hold the
    next rollout until a person acknowledges) or ``degrade`` (send ``degradePercent`` of the
    traffic to ``spec.fallbackRef`` until a person revives the model or a new revision is
    promoted); a warning gate only alerts.
    """

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "duration(self.interval) >= duration('30s')",
                "guard.interval must be at least 30s",
            ),
            (
                "self.warningDays <= self.falseAlarmDays",
                "guard.warningDays must not exceed guard.falseAlarmDays",
            ),
        )
    )

    enabled: bool = True
    interval: Duration = "5m"
    label_delay: Duration = "0s"
    false_alarm_days: float = Field(default=90.0, gt=0, le=3650)
    warning_days: float = Field(default=7.0, gt=0, le=3650)
    on_breach: BreachResponse = "rollback"
    degrade_percent: int = Field(default=100, ge=1, le=100)
    gates: list[GuardGate] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def sane(self) -> Guard:
        if parse_duration(self.interval) < 30:
            raise ValueError("guard.interval must be at least 30s")
        if self.warning_days > self.false_alarm_days:
            raise ValueError("guard.warningDays must not exceed guard.falseAlarmDays")
        return self

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def label_delay_seconds(self) -> float:
        return parse_duration(self.label_delay)

    @property
    def degrades(self) -> bool:
        """Whether some breach would send traffic to the fallback."""
        return self.on_breach == "degrade" or any(g.on_breach == "degrade" for g in self.gates)

    def response(self, gate: Gate) -> BreachResponse:
        """What a breach of ``gate`` does: its own entry, else by severity and ``onBreach``."""
        own = next((g.on_breach for g in self.gates if g.name == gate.name), None)
        if own is not None:
            return own
        return self.on_breach if gate.severity == "critical" else "alert"
