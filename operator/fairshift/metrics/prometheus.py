"""Read both model versions' counts from Prometheus (the metric convention and custom gates).

:class:`PrometheusSource` runs five convention queries per tick for both versions together (one
per series, see ``metrics.promql``; asked at once, concurrently over the operator's asynchronous
transport, ``metrics.async_transport``), plus one per custom gate and version, through a
transport (``metrics.transport``); it parses each answer (``metrics.answers``), turns the pinned
readings into counts (``metrics.readings``) and decodes the convention (``metrics.decoding``)
into a :class:`~fairshift.engine.counts.VersionCounts` per version. ``requests`` is the
request-duration histogram's count, or predictions plus errors when the server does not time its
requests; ``custom[gate]`` is a single number.

What it refuses to guess: an empty, NaN, infinite, negative or malformed answer is *no data*
(the cell, histogram or custom value is left out or None), never a zero that could pass a gate.
A broken error count drops ``requests`` to zero so that the error rate is undefined. Transport
failures, timeouts and HTTP 5xx raise :class:`MetricsError` (temporary); PromQL the server
refuses (HTTP 4xx) raises :class:`InvalidQueryError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fairshift_instrument.convention import READING_VERSION

from fairshift.api.analysis import Analysis, Gate, Prometheus
from fairshift.api.durations import parse_duration
from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, VersionCounts
from fairshift.metrics import promql
from fairshift.metrics.answers import MALFORMED_ANSWER, Answer, Sample, parse_answer, single_value
from fairshift.metrics.decoding import (
    CellTally,
    error_count,
    latency_histogram,
    score_histograms,
)
from fairshift.metrics.readings import (
    SeriesKey,
    Split,
    VersionReadings,
    counts_answer,
    restarted_processes,
    split_by_version,
)
from fairshift.metrics.source import InvalidQueryError, QueryContext, Version, VersionPair
from fairshift.metrics.transport import PrometheusTransport, QueryObserver, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collection:
    """The counts of one collect and how they were obtained."""

    counts: VersionPair
    queries: int
    seconds: float
    problems: tuple[str, ...] = ()


class PrometheusSource:
    """A :class:`~fairshift.metrics.source.MetricSource` reading one Prometheus server.

    ``collect`` uses this source's ``address`` (not ``analysis.prometheus``; see
    :class:`PrometheusSources` to follow the spec). ``queries_last_collect`` and
    ``seconds_last_collect`` describe the latest collect.
    """

    def __init__(
        self,
        address: str,
        timeout_seconds: float = 10.0,
        *,
        disable_ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        retries: int = 1,
        observer: QueryObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
        transport: Transport | None = None,
        counted: bool = False,
    ) -> None:
        self.transport: Transport = transport or PrometheusTransport(
            address,
            timeout_seconds,
            disable_ssl=disable_ssl,
            headers=headers,
            retries=retries,
            observer=observer,
            clock=clock,
        )
        self.address = self.transport.address
        self.counted = counted
        """Let Prometheus sum the counts (``promql.counted_query``): one element per cell."""
        self.clock = clock
        self.queries_last_collect = 0
        self.seconds_last_collect = 0.0

    def collect(
        self, analysis: Analysis, stable: QueryContext, candidate: QueryContext
    ) -> VersionPair:
        """Counts of both versions from ``start`` to ``end``; see the module docstring."""
        return self.collect_detailed(analysis, stable, candidate).counts

    def collect_detailed(
        self, analysis: Analysis, stable: QueryContext, candidate: QueryContext
    ) -> Collection:
        """Like ``collect``, with the number of queries, the time spent and what was dropped."""
        run = _Run(self, analysis, {"stable": stable, "candidate": candidate})
        started = self.clock()
        try:
            collection = run.collect()
        finally:
            self.queries_last_collect = run.queries
            self.seconds_last_collect = self.clock() - started
        for problem in collection.problems:
            log.warning("%s/%s: %s", candidate.namespace, candidate.rollout, problem)
        return collection


class _Run:
    """One collect: renders the queries, runs them through the source, builds the counts."""

    def __init__(
        self,
        source: PrometheusSource,
        analysis: Analysis,
        contexts: Mapping[Version, QueryContext],
    ):
        self.source = source
        self.analysis = analysis
        self.contexts = contexts
        self.end = max(context.end for context in contexts.values())
        self.attributes = tuple(analysis.slices.attributes)
        self.queries = 0
        self.problems: list[str] = []

    def ask(self, text: str, at: datetime) -> Any:
        self.queries += 1
        return self.source.transport.instant(text, at=at.timestamp())

    def ask_together(self, texts: Sequence[str], at: datetime) -> list[Any]:
        """Several queries at once (concurrent when the transport is asynchronous)."""
        self.queries += len(texts)
        return self.source.transport.instant_many([(text, at.timestamp()) for text in texts])

    def vector(self, what: str, document: Any) -> Answer:
        answer = parse_answer(document)
        if answer.malformed:
            self.problems.append(f"{what}: malformed answer, treated as no data")
        elif answer.unusable_values:
            self.problems.append(
                f"{what}: {answer.unusable_values} NaN, infinite or negative values left out"
            )
        return answer

    def readings(self, family: promql.Family, document: Any) -> Split:
        split = split_by_version(self.vector(family.name, document))
        if split.malformed:
            self.problems.append(f"{family.name}: readings without their markers, no data")
        return split

    def collect(self) -> Collection:
        started = self.source.clock()
        variables = {
            version: promql.query_variables(context, self.analysis.selector, self.analysis.interval)
            for version, context in self.contexts.items()
        }
        readings = [
            reading
            for version, context in self.contexts.items()
            for reading in promql.readings_of(context, variables[version]["selector"])
        ]
        counted = self.source.counted
        families = promql.convention_queries(self.attributes, readings, counted).all()
        documents = self.ask_together([family.query for family in families], self.end)
        answers = (self.counted_answers if counted else self.readings_answers)(families, documents)
        counts = {
            version: replace(
                self.counts(answers[version]), custom=self.custom(version, variables[version])
            )
            for version in self.contexts
        }
        seconds = self.source.clock() - started
        pair = VersionPair(stable=counts["stable"], candidate=counts["candidate"])
        return Collection(pair, self.queries, seconds, tuple(self.problems))

    def readings_answers(
        self, families: Sequence[promql.Family], documents: Sequence[Any]
    ) -> dict[Version, dict[str, Answer]]:
        """Each version's counts per family, from raw readings (``metrics.readings``)."""
        splits = [
            (family, self.readings(family, document))
            for family, document in zip(families, documents, strict=True)
        ]
        return {version: self.version_answers(version, splits) for version in self.contexts}

    def version_answers(
        self, version: Version, splits: Sequence[tuple[promql.Family, Split]]
    ) -> dict[str, Answer]:
        restarted = set[SeriesKey]()
        for _, split in splits:
            series = split.versions.get(version, VersionReadings()).series.values()
            restarted |= restarted_processes(series, self.attributes)
        if restarted:
            self.problems.append(
                f"{version}: {len(restarted)} processes restarted; counted since their restart"
            )
        return {
            family.name: counts_answer(split, version, family.by, restarted, self.attributes)
            for family, split in splits
        }

    def counted_answers(
        self, families: Sequence[promql.Family], documents: Sequence[Any]
    ) -> dict[Version, dict[str, Answer]]:
        """Each version's counts per family, as Prometheus summed them (``counted``)."""
        answers: dict[Version, dict[str, Answer]] = {version: {} for version in self.contexts}
        for family, document in zip(families, documents, strict=True):
            split = by_version_marker(self.vector(family.name, document))
            if split is None:
                self.problems.append(f"{family.name}: counts without their markers, no data")
            for version in self.contexts:
                answers[version][family.name] = (
                    MALFORMED_ANSWER if split is None else split.get(version, Answer())
                )
        return answers

    def counts(self, answers: Mapping[str, Answer]) -> VersionCounts:
        """One version's counts from its answer of every family."""
        cells = self.cells(answers["predictions"], answers["outcomes"])
        scores, labelled = self.scores(answers["scores"])
        latency = latency_histogram(answers["latency"])
        errors = error_count(answers["errors"])
        return VersionCounts(
            cells=cells,
            scores=scores,
            labelled_scores=labelled,
            latency=latency,
            requests=self.requests(latency, cells, errors),
            errors=errors or 0.0,
        )

    def cells(self, predictions: Answer, outcomes: Answer) -> dict[SliceKey, BinaryCounts]:
        if predictions.malformed or outcomes.malformed:
            return {}  # an unreadable sample could belong to any cell
        tally = CellTally(self.attributes)
        tally.add_predictions(predictions.samples)
        tally.add_outcomes(outcomes.samples)
        if tally.unplaced:
            self.problems.append(
                f"{tally.unplaced} samples lack a slice label of {list(self.attributes)}"
            )
        if tally.dropped:
            self.problems.append(f"{len(tally.dropped)} cells dropped: bad decision/label")
        return tally.result()

    def scores(
        self, answer: Answer
    ) -> tuple[dict[SliceKey, Histogram], dict[SliceKey, dict[int, Histogram]]]:
        if answer.malformed:
            return {}, {}
        scores, labelled, dropped = score_histograms(answer.samples, self.attributes)
        if dropped:
            self.problems.append(f"scores: {dropped} histograms dropped (labels or buckets)")
        return scores, labelled

    def requests(
        self,
        latency: Histogram | None,
        cells: Mapping[SliceKey, BinaryCounts],
        errors: float | None,
    ) -> float:
        if errors is None:
            self.problems.append("errors: unusable answer; the error rate is left undefined")
            return 0.0
        if latency is not None:
            return latency.total
        return sum(c.predictions for c in cells.values()) + errors

    def custom(self, version: Version, variables: Mapping[str, str]) -> dict[str, float | None]:
        """Each custom gate's value for one version, evaluated at the end of its span."""
        return {
            gate.name: self.custom_value(gate, variables, self.contexts[version].end)
            for gate in self.analysis.gates
            if gate.query is not None
        }

    def custom_value(self, gate: Gate, variables: Mapping[str, str], at: datetime) -> float | None:
        """One custom gate's value for one version (its own query: it may answer a scalar)."""
        assert gate.query is not None
        try:
            text = promql.render_template(gate.query, variables)
        except promql.TemplateError as error:
            raise promql.TemplateError(f"gate {gate.name}: {error}") from None
        value = single_value(self.ask(text, at))
        if value is None:
            self.problems.append(
                f"gate {gate.name} ({variables['version']}): no single finite value, treated as"
                " no data (if no series means zero, end the query with `or vector(0)`)"
            )
        return value


def by_version_marker(answer: Answer) -> dict[str, Answer] | None:
    """A counted answer's samples by their ``fairshift_version``, the marker removed; None
    when the answer is malformed or an element has no known version."""
    if answer.malformed:
        return None
    versions: dict[str, list[Sample]] = {}
    for sample in answer.samples:
        labels = dict(sample.labels)
        version = labels.pop(READING_VERSION, None)
        if version not in ("stable", "candidate"):
            return None
        versions.setdefault(version, []).append(Sample(labels, sample.value))
    return {version: Answer(tuple(samples)) for version, samples in versions.items()}


class PrometheusSources:
    """A MetricSource that follows ``analysis.prometheus``: one PrometheusSource per server.

    ``make`` builds a source for an address and a timeout in seconds (default:
    :class:`PrometheusSource` with ``observer``); sources are kept and reused. Rollouts that
    name no server use ``default`` (the operator's ``--prometheus``).
    """

    def __init__(
        self,
        make: Callable[[str, float], PrometheusSource] | None = None,
        *,
        observer: QueryObserver | None = None,
        default: Prometheus | None = None,
    ) -> None:
        self._default = default
        self._make = make or (
            lambda address, timeout: PrometheusSource(address, timeout, observer=observer)
        )
        self._sources: dict[tuple[str, float], PrometheusSource] = {}
        self._lock = threading.Lock()

    def source_for(self, named: Prometheus | None) -> PrometheusSource:
        prometheus = named or self._default
        if prometheus is None:
            raise InvalidQueryError(
                "no Prometheus address: set spec.analysis.prometheus.address "
                "or start the operator with --prometheus"
            )
        key = (prometheus.address, parse_duration(prometheus.timeout))
        with self._lock:
            if key not in self._sources:
                self._sources[key] = self._make(*key)
            return self._sources[key]

    def collect(
        self, analysis: Analysis, stable: QueryContext, candidate: QueryContext
    ) -> VersionPair:
        return self.source_for(analysis.prometheus).collect(analysis, stable, candidate)

    def collect_detailed(
        self, analysis: Analysis, stable: QueryContext, candidate: QueryContext
    ) -> Collection:
        return self.source_for(analysis.prometheus).collect_detailed(analysis, stable, candidate)
