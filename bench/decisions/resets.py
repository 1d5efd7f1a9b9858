"""The counter-resets scenario: identical models whose pods restart during the step.

Each version is served by :data:`PODS` pods. Every pod has been running before the step, so
its counters start the step at what it counted before (a random number of looks' worth). At
each look (30 s) a pod restarts with probability :data:`RESTART_PER_LOOK`, at a random
moment inside the look: all of its counters start again from zero, and what it counted
earlier in that look is lost with them.

At every look the analysis reads every raw series at the step start and now, as the
operator's readings queries do, and turns them into counts in two ways on the same readings:

- ``reading rule``: fairshift's own rule (``fairshift.metrics.readings``: resets per process,
  only what is provably new is kept), exactly as ``metrics.prometheus`` calls it;
- ``naive now - start``: each series' ``end - start`` summed by slice and decision, what
  ``increase`` without reset repair gives; a negative sum is no data, as
  ``metrics.answers`` makes any negative value.

The engine then evaluates and decides on each rule's counts exactly as the other lifecycle
scenarios do (one step, carried budget). A count is *impossible* when it is negative, its
selections exceed its decisions, or it exceeds what the versions' pods really decided since
the step start (known to the simulation, not to the rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from fairshift_instrument.convention import DECISION, READING_INSTANT, READING_VERSION

from fairshift.api.analysis import Analysis
from fairshift.engine.counts import BinaryCounts, VersionCounts, slice_key
from fairshift.engine.decision import Action, StepClock, decide
from fairshift.engine.gates import evaluate
from fairshift.metrics import readings
from fairshift.metrics.answers import Answer, Sample

INTERVAL = 30.0
LOOKS = 40
MINIMUM_LOOKS = 20
PODS = 3
RESTART_PER_LOOK = 1.0 / LOOKS
"""About one restart per pod per step."""
PRIOR_LOOKS = 20.0
"""A pod's counters start the step at up to this many looks' worth of its traffic."""
SLICES = ("sex",)
BY = ("sex", DECISION)
SHARES = {"F": 0.5, "M": 0.5}
SELECTION = 0.3
PER_LOOK = {"stable": 1500.0, "candidate": 500.0}
"""Requests per look of each version (a 25% canary)."""
GATES = [{"name": "selection", "metric": "selection_rate", "maxChange": 0.02}]
RULE, NAIVE = "reading rule", "naive now - start"
RULES = (RULE, NAIVE)

Series = tuple[str, str]  # (sex, decision)
Counters = dict[Series, float]


def analysis() -> Analysis:
    return Analysis.model_validate(
        {
            "prometheus": {"address": "http://prometheus:9090"},
            "slices": {"attributes": list(SLICES), "intersections": False, "minSamples": 100},
            "alpha": 0.05,
            "gates": GATES,
        }
    )


@dataclass
class Pod:
    """One serving process: its counters at the step start and now, and its restarts."""

    name: str
    start: Counters
    now: Counters
    restarts: int = 0


@dataclass
class Version:
    """A version's pods and what they really decided since the step start, per series."""

    name: str
    pods: list[Pod]
    truth: Counters = field(default_factory=dict)


def new_version(rng: np.random.Generator, name: str) -> Version:
    per_pod = PER_LOOK[name] / PODS
    pods = []
    for index in range(PODS):
        counted = prior(rng, per_pod * rng.uniform(0.0, PRIOR_LOOKS))
        pods.append(Pod(f"{name}-{index}", dict(counted), dict(counted)))
    return Version(name, pods)


def prior(rng: np.random.Generator, requests: float) -> Counters:
    """Counters of ``requests`` requests' decisions, per series."""
    counters: Counters = {}
    for sex, share in SHARES.items():
        decisions = rng.poisson(requests * share)
        selected = rng.binomial(decisions, SELECTION)
        counters[(sex, "1")] = float(selected)
        counters[(sex, "0")] = float(decisions - selected)
    return counters


def serve_look(rng: np.random.Generator, version: Version) -> None:
    """One look of traffic on every pod; a pod may restart inside it."""
    for pod in version.pods:
        served = prior(rng, PER_LOOK[version.name] / PODS)
        for series, value in served.items():
            version.truth[series] = version.truth.get(series, 0.0) + value
        if rng.random() < RESTART_PER_LOOK:
            kept = rng.uniform()  # the share of the look after the restart
            pod.now = {series: float(rng.binomial(int(v), kept)) for series, v in served.items()}
            pod.restarts += 1
        else:
            pod.now = {series: pod.now[series] + served[series] for series in served}


def readings_answer(versions: list[Version]) -> Answer:
    """Every raw series of every version at the step start and now, as the readings query."""
    samples = []
    for version in versions:
        for pod in version.pods:
            for instant, counters in (("start", pod.start), ("end", pod.now)):
                for (sex, decision), value in counters.items():
                    labels = {
                        "namespace": "lending",
                        "pod": pod.name,
                        "sex": sex,
                        DECISION: decision,
                        READING_VERSION: version.name,
                        READING_INSTANT: instant,
                    }
                    samples.append(Sample(labels, value))
    return Answer(tuple(samples))


def rule_counts(answer: Answer, version: str) -> dict[Series, float | None]:
    """fairshift's reading rule, called as ``metrics.prometheus`` calls it."""
    split = readings.split_by_version(answer)
    series = split.versions[version].series.values()
    restarted = readings.restarted_processes(series, SLICES)
    summed = readings.counts_answer(split, version, BY, restarted, SLICES)
    return {(s.labels["sex"], s.labels[DECISION]): s.value for s in summed.samples}


def naive_counts(answer: Answer, version: str) -> dict[Series, float | None]:
    """Each series' ``end - start`` summed by slice and decision: no reset repair."""
    signed = {"start": -1.0, "end": 1.0}
    sums: dict[Series, float] = {}
    for sample in answer.samples:
        if sample.labels[READING_VERSION] != version or sample.value is None:
            continue
        key = (sample.labels["sex"], sample.labels[DECISION])
        sums[key] = sums.get(key, 0.0) + signed[sample.labels[READING_INSTANT]] * sample.value
    return dict(sums)


COUNTERS = {RULE: rule_counts, NAIVE: naive_counts}


def impossible(counted: dict[Series, float | None], truth: Counters) -> bool:
    """A count below zero or above what the pods really decided since the step start."""
    return any(
        value is not None and not 0.0 <= value <= truth.get(series, 0.0)
        for series, value in counted.items()
    )


def version_counts(counted: dict[Series, float | None]) -> VersionCounts:
    """Per slice: decisions and selections; a negative or unusable count drops its slice."""
    cells = {}
    for sex in SHARES:
        selected, rejected = counted.get((sex, "1")), counted.get((sex, "0"))
        if selected is None or rejected is None or selected < 0 or rejected < 0:
            continue
        if selected + rejected > 0:
            cells[slice_key({"sex": sex})] = BinaryCounts(selected + rejected, selected)
    return VersionCounts(cells=cells)


@dataclass
class Outcome:
    """One rollout: each rule's end and look, and its looks with an impossible count."""

    ends: dict[str, tuple[str, int]] = field(default_factory=dict)
    impossible_looks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    restarts: int = 0


def judge(
    gates: Analysis, answer: Answer, versions: list[Version], rule: str, look: int
) -> tuple[Action, bool]:
    """The engine's action on one rule's counts at one look, and whether any was impossible."""
    counted = {v.name: COUNTERS[rule](answer, v.name) for v in versions}
    wrong = any(impossible(counted[v.name], v.truth) for v in versions)
    result = evaluate(
        gates,
        version_counts(counted["stable"]),
        version_counts(counted["candidate"]),
        carried={},
    )
    clock = StepClock((look + 1) * INTERVAL, MINIMUM_LOOKS * INTERVAL, LOOKS * INTERVAL)
    return decide(result, clock, last_step=True).action, wrong


def counter_resets(rng: np.random.Generator) -> Outcome:
    """One A/A rollout step with restarting pods, judged on each rule's counts."""
    gates = analysis()
    versions = [new_version(rng, "stable"), new_version(rng, "candidate")]
    outcome = Outcome()
    for look in range(LOOKS):
        for version in versions:
            serve_look(rng, version)
        answer = readings_answer(versions)
        for rule in RULES:
            if rule in outcome.ends:
                continue
            action, wrong = judge(gates, answer, versions, rule, look)
            outcome.impossible_looks[rule] += wrong
            if action is Action.ROLLBACK:
                outcome.ends[rule] = ("rollback", look + 1)
            elif action is Action.PROMOTE:
                outcome.ends[rule] = ("promote", look + 1)
        if len(outcome.ends) == len(RULES):
            break
    for rule in RULES:
        outcome.ends.setdefault(rule, ("hold", LOOKS))
    outcome.restarts = sum(pod.restarts for version in versions for pod in version.pods)
    return outcome


def summary(outcomes: list[Outcome]) -> str:
    """Restarts, and per rule the rollouts that saw an impossible count at some look."""
    restarted = sum(outcome.restarts > 0 for outcome in outcomes)
    parts = [
        f"{rule}: {sum(o.impossible_looks[rule] > 0 for o in outcomes)} with an impossible count"
        for rule in RULES
    ]
    return (
        f"counter-resets: {len(outcomes)} rollouts, {restarted} with at least one restart "
        f"({sum(o.restarts for o in outcomes)} restarts); " + "; ".join(parts)
    )
