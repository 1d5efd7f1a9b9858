"""What the benchmark measures about one process: CPU, memory and its own /metrics.

* CPU seconds: ``utime + stime`` of ``/proc/<pid>/stat`` (the process and all its threads);
* resident memory: ``VmRSS`` of ``/proc/<pid>/status``;
* the operator's metrics endpoint, parsed with prometheus_client's text parser: counters
  summed over their labels, histogram buckets, gauges by label;
* quantiles of a histogram between two scrapes (bucket deltas, linear inside a bucket, as
  PromQL's ``histogram_quantile`` does).
"""

from __future__ import annotations

import math
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of the process in MiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return math.nan


@dataclass
class Scrape:
    """One read of a /metrics endpoint."""

    counters: dict[str, float] = field(default_factory=dict)
    labelled: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)

    def counter(self, name: str) -> float:
        return self.counters.get(name, 0.0)

    def counter_where(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(
            value
            for (metric, items), value in self.labelled.items()
            if metric == name and wanted <= set(items)
        )

    def gauge(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(
            value
            for (metric, items), value in self.gauges.items()
            if metric == name and wanted <= set(items)
        )


def parse_metrics(text: str) -> Scrape:
    """Counters (``_total`` samples, summed over labels), gauges and histogram buckets."""
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.type == "counter" and sample.name.endswith("_total"):
                scrape.counters[sample.name] = scrape.counters.get(sample.name, 0.0) + sample.value
                key = (sample.name, tuple(sorted(sample.labels.items())))
                scrape.labelled[key] = sample.value
            elif family.type == "gauge":
                key = (sample.name, tuple(sorted(sample.labels.items())))
                scrape.gauges[key] = sample.value
            elif family.type == "histogram":
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    scrape.buckets.setdefault(family.name, {})[bound] = sample.value
                elif sample.name.endswith(("_count", "_sum")):
                    scrape.counters[sample.name] = sample.value
    return scrape


def scrape(url: str, timeout: float = 10.0) -> Scrape:
    """Read and parse a /metrics endpoint."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_metrics(response.read().decode())


def bucket_delta(
    before: Mapping[float, float], after: Mapping[float, float]
) -> list[tuple[float, float]]:
    """Cumulative bucket counts observed between two scrapes, sorted by bound."""
    return sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The ``q`` quantile of cumulative ``(le, count)`` buckets; NaN without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return math.inf  # beyond the last finite bucket (PromQL answers its bound)
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return math.nan
