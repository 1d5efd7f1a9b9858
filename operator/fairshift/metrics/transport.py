"""HTTP to Prometheus: one instant query out, the decoded JSON document back, or a typed error.

The status code comes from the response object: 200 is an answer (its body may still be
unusable, which the caller treats as no data); a 4xx other than 408 and 429 means the server
refused the PromQL (:class:`InvalidQueryError`, retrying does not help); anything else, a
timeout or an unreachable server is a temporary :class:`MetricsError`. Connection errors and
502/503/504 are retried a few times, quickly; the operator backs off between analyses. Proxy
and CA-bundle settings come from the environment, read once when the transport is made.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fairshift.metrics.source import InvalidQueryError, MetricsError

RETRIED_STATUSES = (502, 503, 504)
RETRY_BACKOFF_SECONDS = 0.2
"""The first pause before a retry; it doubles with each further one."""
NOT_REFUSALS = (408, 429)
"""4xx statuses that say "later", not "never"."""

QUERY_PATH = "/api/v1/query"
UNREADABLE = object()
"""What :meth:`PrometheusTransport.instant` returns for a 200 whose body is not JSON."""


class Transport(Protocol):
    """What a source needs from its transport (this module's, or the asynchronous one)."""

    address: str

    def instant(self, query: str, at: float | None = None) -> Any: ...

    def instant_many(self, queries: Sequence[tuple[str, float | None]]) -> list[Any]: ...


class QueryObserver(Protocol):
    """Told about every query (the operator's own metrics implement this)."""

    def observe_query(self, seconds: float, ok: bool) -> None: ...


def default_retry(retries: int) -> Retry:
    """Retry connection errors and 502/503/504 ``retries`` times with a short backoff."""
    return Retry(
        total=retries,
        backoff_factor=RETRY_BACKOFF_SECONDS,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )


def environment_ca_bundle() -> str | None:
    """The CA bundle requests would take from the environment, if any."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def is_refusal(status: int) -> bool:
    """A status that means the query itself is wrong."""
    return 400 <= status < 500 and status not in NOT_REFUSALS


def error_message(text: str) -> str:
    """The ``errorType: error`` of a Prometheus error body, or the start of the raw body."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{body.get('errorType', 'error')}: {body['error']}"[:500]
    return text[:500]


def query_params(query: str, at: float | None) -> dict[str, str]:
    """The parameters of an instant query at ``at`` (unix seconds; None: now)."""
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at:.3f}"
    return params


def document(address: str, query: str, status: int, text: str) -> Any:
    """What an answer means: a 200's JSON document (:data:`UNREADABLE` when it is not JSON),
    :class:`InvalidQueryError` for a refusal, :class:`MetricsError` for anything else."""
    if status == 200:
        try:
            return json.loads(text)
        except ValueError:
            return UNREADABLE
    message = f"HTTP {status}: {error_message(text)}"
    if is_refusal(status):
        raise InvalidQueryError(f"Prometheus refused the query {query!r}: {message}")
    raise MetricsError(f"Prometheus at {address} failed: {message}")


class PrometheusTransport:
    """Instant queries against one Prometheus server, each observed and timed."""

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
        self.clock = clock
        self._observer = observer
        self._session = requests.Session()
        # The environment (proxies, CA bundle) is read once here: requests would otherwise walk
        # the whole process environment on every query, a measurable share of the operator's CPU.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(self.address))
        self._session.verify = False if disable_ssl else environment_ca_bundle() or True
        self._session.headers.update(headers or {})
        self._session.mount(self.address, HTTPAdapter(max_retries=default_retry(retries)))

    def instant(self, query: str, at: float | None = None) -> Any:
        """The JSON document answering ``query`` evaluated at ``at`` (unix seconds; default now).

        Returns :data:`UNREADABLE` for a 200 whose body is not JSON. Raises MetricsError
        (unreachable, timeout, 5xx) or InvalidQueryError (the server refused the query).
        """
        started = self.clock()
        ok = False
        try:
            response = self._get(query_params(query, at))
            ok = response.status_code == 200
            return document(self.address, query, response.status_code, response.text)
        finally:
            if self._observer is not None:
                self._observer.observe_query(self.clock() - started, ok)

    def instant_many(self, queries: Sequence[tuple[str, float | None]]) -> list[Any]:
        """The documents answering ``(query, at)`` pairs, one after the other.

        Like the asynchronous transport, every query is asked and the first error (after its
        retries) is raised at the end.
        """
        documents: list[Any] = []
        first_error: MetricsError | None = None
        for query, at in queries:
            try:
                documents.append(self.instant(query, at))
            except MetricsError as error:
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        return documents

    def _get(self, params: Mapping[str, str]) -> requests.Response:
        try:
            return self._session.get(
                self.address + QUERY_PATH, params=params, timeout=self.timeout_seconds
            )
        except requests.exceptions.RequestException as error:
            raise MetricsError(f"Prometheus at {self.address} did not answer: {error}") from None
