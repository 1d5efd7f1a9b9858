"""A synthetic loan-applicant population and a binary classifier with injectable behaviour.

Every person is a deterministic function of an integer id, so a request carries only the id and
both model versions (and the label that arrives later) agree on who it is:

* ``sex`` F/M (48/52) and ``age_band`` 18-29 / 30-59 / 60+ (22 % / 58 % / 20 %);
* a ground-truth label (1 = would repay) with a base rate of about 0.4 in every age band.

A model is described by a :class:`ModelBehaviour` (the JSON a Deployment carries in its
``SIM_MODEL`` env var)::

    {"tpr": 0.8, "fpr": 0.15, "seed": 1, "latency_ms": 20, "error_rate": 0.0,
     "score_shift": 0.0, "label_delay_s": 2.0,
     "bias": {"sex=F,age_band=60+": {"tpr": -0.3}, "sex=F": {"selection": -0.05}},
     "production_bias": {"sex=F": {"tpr": -0.4}}, "production_after_s": 20}

``bias`` keys select slices by attribute values (``sex=F`` is every woman, ``sex=F,age_band=60+``
only older women); every matching entry adds its shifts: ``tpr`` (to the true positive rate),
``fpr`` (to the false positive rate), ``selection`` (to both, i.e. to the selection rate).
``score_shift`` changes the score distribution without changing any decision (drift only).
``production_bias`` (same shape as ``bias``) is added only by a server of the ``<target>-primary``
Deployment, from ``production_after_s`` seconds after that server started: a model that was
fair in its shadow and canary steps and degrades once it serves everyone (see
:meth:`ModelBehaviour.in_production`).
Decisions and scores are pseudo-random but reproducible from ``seed`` and the person's id.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ATTRIBUTES = ("sex", "age_band")
SEX_SHARES = (("F", 0.48), ("M", 0.52))
AGE_SHARES = (("18-29", 0.22), ("30-59", 0.58), ("60+", 0.20))
BASE_RATE = {"18-29": 0.40, "30-59": 0.42, "60+": 0.40}
SHIFTS = ("tpr", "fpr", "selection")
MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): fast, deterministic, well spread."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & MASK)) & MASK
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        state = z ^ (z >> 31)
    return state


def uniform(*values: int) -> float:
    """A number in [0, 1) determined by ``values``."""
    return (mix(*values) >> 11) / float(1 << 53)


def pick(u: float, shares: tuple[tuple[str, float], ...]) -> str:
    total = 0.0
    for value, share in shares:
        total += share
        if u < total:
            return value
    return shares[-1][0]


@dataclass(frozen=True)
class Person:
    """One applicant: the slice attributes and the (hidden) ground truth."""

    id: int
    sex: str
    age_band: str
    label: int

    @property
    def slice(self) -> dict[str, str]:
        return {"sex": self.sex, "age_band": self.age_band}


def person(person_id: int) -> Person:
    """The applicant with this id (the same on every call, in every process)."""
    sex = pick(uniform(person_id, 1), SEX_SHARES)
    age = pick(uniform(person_id, 2), AGE_SHARES)
    label = int(uniform(person_id, 3) < BASE_RATE[age])
    return Person(person_id, sex, age, label)


def parse_selector(key: str) -> dict[str, str]:
    """``"sex=F,age_band=60+"`` -> ``{"sex": "F", "age_band": "60+"}``; raises ValueError."""
    pairs: dict[str, str] = {}
    for part in key.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in ATTRIBUTES or not value:
            raise ValueError(
                f"bias key {key!r}: expected attr=value[,attr=value] with attr in {ATTRIBUTES}"
            )
        pairs[name] = value
    return pairs


Bias = tuple[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, float], ...]], ...]
"""Per slice selector (sorted ``(attribute, value)`` pairs), its sorted ``(shift, amount)``."""


def parse_bias(name: str, raw: object) -> Bias:
    """``{"sex=F": {"tpr": -0.3}}`` -> :data:`Bias`; raises ValueError naming the key."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ValueError(f"SIM_MODEL {name} must be a JSON object of slice -> shifts")
    bias = []
    for key, shifts in raw.items():
        if not isinstance(shifts, Mapping):
            raise ValueError(f"SIM_MODEL {name} {key!r}: shifts must be a JSON object")
        bad = set(shifts) - set(SHIFTS)
        if bad:
            raise ValueError(f"SIM_MODEL {name} {key!r}: unknown shifts {sorted(bad)}")
        selector = tuple(sorted(parse_selector(key).items()))
        bias.append((selector, tuple(sorted((k, float(v)) for k, v in shifts.items()))))
    return tuple(bias)


@dataclass(frozen=True)
class ModelBehaviour:
    """How a simulated model version behaves (parsed from ``SIM_MODEL``)."""

    tpr: float = 0.80
    fpr: float = 0.15
    seed: int = 1
    latency_ms: float = 20.0
    error_rate: float = 0.0
    score_shift: float = 0.0
    label_delay_s: float = 2.0
    bias: Bias = field(default_factory=tuple)
    production_bias: Bias = field(default_factory=tuple)
    production_after_s: float = 0.0

    @classmethod
    def from_json(cls, text: str | None) -> ModelBehaviour:
        """Parse the ``SIM_MODEL`` JSON (empty or missing: the defaults)."""
        if not text:
            return cls()
        raw = json.loads(text)
        if not isinstance(raw, Mapping):
            raise ValueError("SIM_MODEL must be a JSON object")
        known = {
            "tpr",
            "fpr",
            "seed",
            "latency_ms",
            "error_rate",
            "score_shift",
            "label_delay_s",
            "production_after_s",
        }
        unknown = set(raw) - known - {"bias", "production_bias"}
        if unknown:
            raise ValueError(f"SIM_MODEL: unknown keys {sorted(unknown)}")
        values: dict[str, Any] = {
            k: int(raw[k]) if k == "seed" else float(raw[k]) for k in known if k in raw
        }
        if values.get("production_after_s", 0.0) < 0:
            raise ValueError("SIM_MODEL production_after_s must not be negative")
        return cls(
            **values,
            bias=parse_bias("bias", raw.get("bias")),
            production_bias=parse_bias("production_bias", raw.get("production_bias")),
        )

    def in_production(self) -> ModelBehaviour:
        """This model once it has served production for ``production_after_s``: its
        ``production_bias`` added to ``bias`` (every matching entry of both applies)."""
        return replace(self, bias=self.bias + self.production_bias, production_bias=())

    def rates(self, slice_values: Mapping[str, str]) -> tuple[float, float]:
        """(TPR, FPR) of this model on a slice, after every matching bias entry."""
        tpr, fpr = self.tpr, self.fpr
        for selector, shifts in self.bias:
            if all(slice_values.get(name) == value for name, value in selector):
                for kind, amount in shifts:
                    if kind in ("tpr", "selection"):
                        tpr += amount
                    if kind in ("fpr", "selection"):
                        fpr += amount
        return min(max(tpr, 0.0), 1.0), min(max(fpr, 0.0), 1.0)


@dataclass(frozen=True)
class Prediction:
    decision: int
    score: float
    latency_s: float
    failed: bool


def predict(model: ModelBehaviour, who: Person) -> Prediction:
    """The model's answer for ``who``: decision, score, how long it takes, whether it fails."""
    tpr, fpr = model.rates(who.slice)
    u = uniform(model.seed, who.id, 11)
    decision = int(u < (tpr if who.label else fpr))
    # the score sits on the decision's side of 0.5; score_shift squeezes it towards 0.5
    v = uniform(model.seed, who.id, 12) ** math.exp(model.score_shift)
    score = 0.5 + 0.4999 * v if decision else 0.5 - 0.5 * v
    z = math.sqrt(-2.0 * math.log(max(uniform(model.seed, who.id, 13), 1e-12))) * math.cos(
        2 * math.pi * uniform(model.seed, who.id, 14)
    )
    latency = model.latency_ms / 1000.0 * math.exp(0.25 * z)
    failed = uniform(model.seed, who.id, 15) < model.error_rate
    return Prediction(decision, min(max(score, 0.0), 1.0), max(latency, 0.0), failed)


@dataclass(frozen=True)
class MixCycle:
    """A day/night traffic mix: the share of applicants in one group cycles over time.

    The share of requests from people matching ``selector`` (e.g. ``age_band=60+``) follows
    ``low + (high - low) * (1 - cos(2 pi t / period_s)) / 2``: ``low`` at t = 0 ("day"),
    ``high`` half a period later ("night"). Each request draws in or out of the group by that
    share, then an applicant of that side by rejection, so every person is still a
    deterministic function of its id.
    """

    selector: tuple[tuple[str, str], ...]
    low: float
    high: float
    period_s: float

    @classmethod
    def parse(cls, text: str, period_s: float) -> MixCycle:
        """``"age_band=60+:0.05:0.6"`` (selector:low:high); raises ValueError."""
        where, sep, shares = text.partition(":")
        low_text, sep2, high_text = shares.partition(":")
        if not sep or not sep2:
            raise ValueError(
                f"mix {text!r}: expected selector:low:high, e.g. age_band=60+:0.05:0.6"
            )
        low, high = float(low_text), float(high_text)
        if not 0 < low < 1 or not 0 < high < 1:
            raise ValueError(f"mix {text!r}: shares must be strictly between 0 and 1")
        if period_s <= 0:
            raise ValueError("the mix period must be positive")
        return cls(tuple(sorted(parse_selector(where).items())), low, high, period_s)

    def share(self, elapsed_s: float) -> float:
        """The group's share of requests ``elapsed_s`` seconds after traffic started."""
        phase = (1 - math.cos(2 * math.pi * elapsed_s / self.period_s)) / 2
        return self.low + (self.high - self.low) * phase

    def matches(self, who: Person) -> bool:
        return all(who.slice.get(name) == value for name, value in self.selector)

    def draw(self, rng: random.Random, elapsed_s: float, tries: int = 1000) -> int:
        """A person id for a request ``elapsed_s`` seconds in, by the mix at that time."""
        inside = rng.random() < self.share(elapsed_s)
        for _ in range(tries):
            person_id = rng.getrandbits(40)
            if self.matches(person(person_id)) == inside:
                return person_id
        raise RuntimeError(f"no applicant {'in' if inside else 'outside'} {self.selector}")
