"""Read one model version's counts from Prometheus (the metric convention and custom gates).

:class:`PrometheusSource` runs five convention queries per version and tick (see
``metrics.promql``), plus one per custom gate, and turns the answers into a
:class:`~fairshift.engine.counts.VersionCounts`:

* ``cells`` from predictions ``{decision}`` and outcomes ``{decision, label}`` per finest slice;
* ``scores`` (``label=""`` buckets) and ``labelled_scores`` (``label`` 0/1) per cell;
* ``latency`` from the request-duration buckets; ``requests`` is that histogram's count, or
  predictions plus errors when the server does not time its requests;
* ``errors``; ``custom[gate]`` as a single number.

What it refuses to guess: an empty, NaN, infinite, negative or malformed answer is *no data*
(the cell, histogram or custom value is left out or None), never a zero that could pass a
gate. A sample that cannot be placed (missing slice label, unknown decision) drops its cell. A
broken error count drops ``requests`` to zero so that the error rate is undefined. Transport
failures, timeouts and HTTP 5xx raise :class:`MetricsError` (temporary); PromQL the server
refuses (HTTP 4xx) raises :class:`InvalidQueryError`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from fairshift_instrument.convention import (
    BUCKET_BOUND,
    DECISION,
    LABEL,
    SCORE_BUCKETS,
    UNLABELLED,
)
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from fairshift.api.durations import parse_duration
from fairshift.api.spec import Analysis, Gate, Prometheus
from fairshift.engine.counts import BinaryCounts, Histogram, SliceKey, VersionCounts, slice_key
from fairshift.metrics import promql
from fairshift.metrics.source import InvalidQueryError, MetricsError, QueryContext

log = logging.getLogger(__name__)

HTTP_STATUS = re.compile(r"HTTP Status Code (\d{3})")
RETRIED_STATUSES = (502, 503, 504)

Labels = Mapping[str, str]


class QueryObserver(Protocol):
    """Told about every query (the operator's own metrics implement this)."""

    def observe_query(self, seconds: float, ok: bool) -> None: ...


@dataclass(frozen=True)
class Sample:
    """One instant-vector element: its labels, and its value when finite and non-negative."""

    labels: Labels
    value: float | None


@dataclass(frozen=True)
class Answer:
    """The samples of one answer; ``malformed`` when it is not an instant vector at all.

    A sample without readable labels makes the whole answer malformed (it could belong to
    any cell); a sample with a NaN, infinite or negative value has ``value`` None.
    """

    samples: tuple[Sample, ...] = ()
    malformed: bool = False

    @property
    def unusable_values(self) -> int:
        return sum(sample.value is None for sample in self.samples)


@dataclass(frozen=True)
class Collection:
    """The counts of one collect and how they were obtained."""

    counts: VersionCounts
    queries: int
    seconds: float
    problems: tuple[str, ...] = ()


class Malformed:
    """The marker for an answer that is not JSON of the HTTP API's shape."""


MALFORMED = Malformed()


def parse_number(raw: Any) -> float | None:
    """A finite, non-negative float from a Prometheus value string; None otherwise."""
    number = finite(raw)
    return number if number is not None and number >= 0.0 else None


def finite(raw: Any) -> float | None:
    """A finite float (negative allowed: custom queries may be differences); None otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_sample(item: Any) -> Sample | None:
    """A vector element ``{"metric": {...}, "value": [t, "v"]}``; None without readable labels."""
    if not isinstance(item, dict):
        return None
    labels, pair = item.get("metric"), item.get("value")
    if not isinstance(labels, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return Sample(labels, None)
    return Sample(labels, parse_number(pair[1]))


def parse_answer(result: Any) -> Answer:
    """The samples of a ``data.result`` list (an instant vector)."""
    if isinstance(result, Malformed) or not isinstance(result, list):
        return Answer(malformed=True)
    samples = [parse_sample(item) for item in result]
    if any(sample is None for sample in samples):
        return Answer(malformed=True)
    return Answer(tuple(s for s in samples if s is not None))


def scalar_answer(result: Any) -> float | None:
    """The single value of a custom query: one vector element or a scalar; None otherwise."""
    if (
        isinstance(result, list)
        and len(result) == 2
        and isinstance(result[0], int | float)
        and not isinstance(result[1], list | dict)
    ):
        return finite(result[1])  # a scalar answer: [time, "value"]
    if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], dict):
        return None
    pair = result[0].get("value")
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return None
    return finite(pair[1])


def cell_of(labels: Labels, attributes: Sequence[str]) -> SliceKey | None:
    """The finest slice a sample belongs to; None when an attribute label is missing."""
    values = {attribute: labels.get(attribute, "") for attribute in attributes}
    if not all(values.values()):
        return None
    return slice_key(values)


def binary_label(labels: Labels, name: str) -> int | None:
    """The 0/1 value of ``decision`` or ``label``; None for anything else."""
    raw = labels.get(name)
    return int(raw) if raw in ("0", "1") else None


@dataclass
class CellTally:
    """Adds samples into per-cell confusion counts; cells with an unusable sample are dropped."""

    attributes: Sequence[str]
    cells: dict[SliceKey, BinaryCounts] = field(default_factory=dict)
    dropped: set[SliceKey] = field(default_factory=set)
    unplaced: int = 0

    def add_predictions(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            key = cell_of(sample.labels, self.attributes)
            decision = binary_label(sample.labels, DECISION)
            if key is None:
                self.unplaced += 1
            elif decision is None or sample.value is None:
                self.dropped.add(key)
            else:
                selected = sample.value if decision == 1 else 0.0
                self.add(key, BinaryCounts(predictions=sample.value, selected=selected))

    def add_outcomes(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            key = cell_of(sample.labels, self.attributes)
            decision = binary_label(sample.labels, DECISION)
            label = binary_label(sample.labels, LABEL)
            if key is None:
                self.unplaced += 1
            elif decision is None or label is None or sample.value is None:
                self.dropped.add(key)
            else:
                self.add(key, confusion_cell(decision, label, sample.value))

    def add(self, key: SliceKey, counts: BinaryCounts) -> None:
        self.cells[key] = self.cells.get(key, BinaryCounts()) + counts

    def result(self) -> dict[SliceKey, BinaryCounts]:
        return {key: c for key, c in self.cells.items() if key not in self.dropped}


def confusion_cell(decision: int, label: int, count: float) -> BinaryCounts:
    """``count`` labelled decisions in one confusion cell."""
    cell = {(1, 1): "tp", (1, 0): "fp", (0, 1): "fn", (0, 0): "tn"}[(decision, label)]
    return BinaryCounts(**{cell: count})


def parse_bound(raw: str | None) -> float | None:
    """A bucket's ``le`` as a float (``+Inf`` included); None when missing or not a number."""
    if raw is None:
        return None
    try:
        bound = float(raw)
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


Bucket = tuple[float | None, float | None]
"""A bucket sample: its ``le`` bound and cumulative count, None where unreadable."""


def bucket_of(sample: Sample) -> Bucket:
    return parse_bound(sample.labels.get(BUCKET_BOUND)), sample.value


def histogram_from_buckets(buckets: Sequence[Bucket]) -> Histogram | None:
    """A histogram from ``(le, cumulative count)`` pairs; None if any is unreadable or repeated."""
    ordered = sorted(
        (bound, count) for bound, count in buckets if bound is not None and count is not None
    )
    if not ordered or len(ordered) != len(buckets):
        return None
    bounds = [bound for bound, _ in ordered]
    if len(set(bounds)) != len(bounds):
        return None
    return Histogram.from_cumulative(bounds, [count for _, count in ordered])


def score_histogram(buckets: Sequence[Bucket]) -> Histogram | None:
    """A score histogram on the convention's buckets (the always-empty +Inf bucket folded in).

    Anything else (other buckets, a broken bound) is None: histograms on other buckets could
    not be compared with the stable model's.
    """
    histogram = histogram_from_buckets(buckets)
    if histogram is None or not histogram.bounds or not math.isinf(histogram.bounds[-1]):
        return None
    finite_bounds, counts = histogram.bounds[:-1], list(histogram.counts[:-1])
    if finite_bounds != SCORE_BUCKETS:
        return None
    counts[-1] += histogram.counts[-1]
    return Histogram(finite_bounds, tuple(counts))


def score_histograms(
    samples: Iterable[Sample], attributes: Sequence[str]
) -> tuple[dict[SliceKey, Histogram], dict[SliceKey, dict[int, Histogram]], int]:
    """Unlabelled and per-label score histograms per cell, and how many groups were dropped."""
    groups: dict[tuple[SliceKey, str], list[Bucket]] = defaultdict(list)
    dropped = 0
    for sample in samples:
        key = cell_of(sample.labels, attributes)
        label = sample.labels.get(LABEL, UNLABELLED)
        if key is None or label not in (UNLABELLED, "0", "1"):
            dropped += 1
            continue
        groups[(key, label)].append(bucket_of(sample))
    scores: dict[SliceKey, Histogram] = {}
    labelled: dict[SliceKey, dict[int, Histogram]] = {}
    for (key, label), buckets in groups.items():
        histogram = score_histogram(buckets)
        if histogram is None:
            dropped += 1
        elif label == UNLABELLED:
            scores[key] = histogram
        else:
            labelled.setdefault(key, {})[int(label)] = histogram
    return scores, labelled, dropped


def latency_histogram(answer: Answer) -> Histogram | None:
    """The request-duration histogram; None when empty or not entirely usable."""
    if answer.malformed or not answer.samples:
        return None
    histogram = histogram_from_buckets([bucket_of(sample) for sample in answer.samples])
    if histogram is None or not math.isinf(histogram.bounds[-1]):
        return None
    return histogram


def error_count(answer: Answer) -> float | None:
    """Errors over the window: 0 when no error series exists yet; None when unusable."""
    if answer.malformed or len(answer.samples) > 1:
        return None
    return answer.samples[0].value if answer.samples else 0.0


def status_code(error: PrometheusApiClientException) -> int | None:
    """The HTTP status prometheus-api-client put in its exception message."""
    found = HTTP_STATUS.search(str(error))
    return int(found.group(1)) if found else None


def default_retry(retries: int) -> Retry:
    """Retry connection errors and 502/503/504 a few times, quickly; the operator backs off."""
    return Retry(
        total=retries,
        backoff_factor=0.2,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )


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
    ) -> None:
        self.address = address.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._client = PrometheusConnect(
            url=self.address,
            headers=dict(headers) if headers else None,
            disable_ssl=disable_ssl,
            retry=default_retry(retries),
            timeout=timeout_seconds,
        )
        self._observer = observer
        self.clock = clock
        self.queries_last_collect = 0
        self.seconds_last_collect = 0.0

    def collect(self, analysis: Analysis, context: QueryContext) -> VersionCounts:
        """Counts of one version over ``context.window_seconds``; see the module docstring."""
        return self.collect_detailed(analysis, context).counts

    def collect_detailed(self, analysis: Analysis, context: QueryContext) -> Collection:
        """Like ``collect``, with the number of queries, the time spent and what was dropped."""
        run = _Run(self, analysis, context)
        started = self.clock()
        try:
            collection = run.collect()
        finally:
            self.queries_last_collect = run.queries
            self.seconds_last_collect = self.clock() - started
        for problem in collection.problems:
            log.warning("%s/%s (%s): %s", *_who(context), problem)
        return collection

    def query(self, text: str) -> Any:
        """The ``data.result`` of one instant query, or :data:`MALFORMED`.

        Raises MetricsError (unreachable, timeout, 5xx) or InvalidQueryError (4xx).
        """
        started = self.clock()
        ok = False
        try:
            result = self._client.custom_query(text)
            ok = True
            return result
        except requests.exceptions.JSONDecodeError:
            ok = True  # the server answered; the answer is unusable, which is "no data"
            return MALFORMED
        except (KeyError, TypeError):
            ok = True
            return MALFORMED
        except requests.exceptions.RequestException as error:
            raise MetricsError(f"Prometheus at {self.address} did not answer: {error}") from None
        except PrometheusApiClientException as error:
            raise self.refusal(text, error) from None
        finally:
            if self._observer is not None:
                self._observer.observe_query(self.clock() - started, ok)

    def refusal(self, text: str, error: PrometheusApiClientException) -> MetricsError:
        code = status_code(error)
        message = str(error)[:500]
        if code is not None and 400 <= code < 500 and code not in (408, 429):
            return InvalidQueryError(f"Prometheus refused the query {text!r}: {message}")
        return MetricsError(f"Prometheus at {self.address} failed: {message}")


def _who(context: QueryContext) -> tuple[str, str, str]:
    return context.namespace, context.rollout, context.version


class _Run:
    """One collect: renders the queries, runs them through the source, builds the counts."""

    def __init__(self, source: PrometheusSource, analysis: Analysis, context: QueryContext):
        self.source = source
        self.analysis = analysis
        self.context = context
        self.attributes = tuple(analysis.slices.attributes)
        self.queries = 0
        self.problems: list[str] = []

    def ask(self, text: str) -> Any:
        self.queries += 1
        return self.source.query(text)

    def vector(self, what: str, text: str) -> Answer:
        answer = parse_answer(self.ask(text))
        if answer.malformed:
            self.problems.append(f"{what}: malformed answer, treated as no data")
        elif answer.unusable_values:
            self.problems.append(
                f"{what}: {answer.unusable_values} NaN, infinite or negative values left out"
            )
        return answer

    def collect(self) -> Collection:
        started = self.source.clock()
        variables = promql.query_variables(
            self.context, self.analysis.selector, self.analysis.interval
        )
        queries = promql.convention_queries(
            self.attributes, variables["selector"], self.context.window_seconds
        )
        cells = self.cells(queries)
        scores, labelled = self.scores(queries.scores)
        latency = latency_histogram(self.vector("latency", queries.latency))
        errors = error_count(self.vector("errors", queries.errors))
        counts = VersionCounts(
            cells=cells,
            scores=scores,
            labelled_scores=labelled,
            latency=latency,
            requests=self.requests(latency, cells, errors),
            errors=errors or 0.0,
            custom=self.custom(variables),
        )
        seconds = self.source.clock() - started
        return Collection(counts, self.queries, seconds, tuple(self.problems))

    def cells(self, queries: promql.ConventionQueries) -> dict[SliceKey, BinaryCounts]:
        tally = CellTally(self.attributes)
        predictions = self.vector("predictions", queries.predictions)
        outcomes = self.vector("outcomes", queries.outcomes)
        if predictions.malformed or outcomes.malformed:
            return {}  # an unreadable sample could belong to any cell
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
        self, text: str
    ) -> tuple[dict[SliceKey, Histogram], dict[SliceKey, dict[int, Histogram]]]:
        answer = self.vector("scores", text)
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

    def custom(self, variables: Mapping[str, str]) -> dict[str, float | None]:
        return {
            gate.name: self.custom_value(gate, variables)
            for gate in self.analysis.gates
            if gate.query is not None
        }

    def custom_value(self, gate: Gate, variables: Mapping[str, str]) -> float | None:
        assert gate.query is not None
        try:
            text = promql.render_template(gate.query, variables)
        except promql.TemplateError as error:
            raise promql.TemplateError(f"gate {gate.name}: {error}") from None
        result = self.ask(text)
        value = None if isinstance(result, Malformed) else scalar_answer(result)
        if value is None:
            self.problems.append(
                f"gate {gate.name}: no single finite value, treated as no data"
                " (if no series means zero, end the query with `or vector(0)`)"
            )
        return value


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

    def collect(self, analysis: Analysis, context: QueryContext) -> VersionCounts:
        return self.source_for(analysis.prometheus).collect(analysis, context)

    def collect_detailed(self, analysis: Analysis, context: QueryContext) -> Collection:
        return self.source_for(analysis.prometheus).collect_detailed(analysis, context)
