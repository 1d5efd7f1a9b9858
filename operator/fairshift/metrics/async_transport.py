"""Prometheus over aiohttp on the operator's event loop, with a bounded connection pool.

The operator's reconciles run in worker threads, but their Prometheus reads do not block one
connection each: :class:`AsyncPrometheusTransport` hands each batch of instant queries to the
operator's asyncio loop, where they run concurrently over one ``aiohttp`` session whose
connector keeps at most ``pool_size`` connections open (kept alive and reused; more queries than
that wait for a free connection instead of opening and discarding sockets). A collect's five
queries therefore overlap each other and those of other rollouts.

The answers and errors are exactly those of the blocking transport the one-shot commands use
(:class:`~fairshift.metrics.transport.PrometheusTransport`): a 200 is a document (or
``UNREADABLE``), a refusing 4xx is :class:`InvalidQueryError`, anything else
:class:`MetricsError`; connection errors and 502/503/504 are retried ``retries`` times after a
short backoff.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import requests

from fairshift.metrics.source import MetricsError
from fairshift.metrics.transport import (
    QUERY_PATH,
    RETRIED_STATUSES,
    RETRY_BACKOFF_SECONDS,
    QueryObserver,
    document,
    environment_ca_bundle,
    query_params,
)

DEFAULT_POOL_SIZE = 32
"""Connections kept to one Prometheus server; queries beyond that wait for a free one."""

T = TypeVar("T")


def environment_proxy(address: str) -> str | None:
    """The proxy the environment names for ``address`` (read once, like the blocking one)."""
    proxies = requests.utils.get_environ_proxies(address)
    scheme = address.split("://", 1)[0]
    return proxies.get(scheme) or proxies.get("all")


class AsyncPrometheusTransport:
    """Instant queries against one Prometheus server, run on ``loop``, each observed and timed.

    Call :meth:`instant` or :meth:`instant_many` from any thread but the loop's own; call
    :meth:`close` (on the loop) when the operator stops.
    """

    def __init__(
        self,
        address: str,
        timeout_seconds: float = 10.0,
        *,
        loop: asyncio.AbstractEventLoop,
        pool_size: int = DEFAULT_POOL_SIZE,
        disable_ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        retries: int = 1,
        observer: QueryObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.address = address.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self.loop = loop
        self.pool_size = pool_size
        self.retries = retries
        self._observer = observer
        self._headers = dict(headers or {})
        self._proxy = environment_proxy(self.address)
        self._ssl: ssl.SSLContext | bool = False if disable_ssl else self._ssl_context()
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def _ssl_context() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=environment_ca_bundle())

    # from a worker thread ------------------------------------------------------------------

    def instant(self, query: str, at: float | None = None) -> Any:
        """The JSON document answering ``query`` at ``at`` (unix seconds; default now)."""
        return self._wait(self.ask(query, at))

    def instant_many(self, queries: Sequence[tuple[str, float | None]]) -> list[Any]:
        """The documents answering ``(query, at)`` pairs, asked concurrently, in order.

        The first error (after its retries) is raised once every query has finished.
        """
        return self._wait(self.ask_many(queries))

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result()

    # on the loop ---------------------------------------------------------------------------

    async def ask_many(self, queries: Sequence[tuple[str, float | None]]) -> list[Any]:
        answers = await asyncio.gather(
            *(self.ask(query, at) for query, at in queries), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return list(answers)

    async def ask(self, query: str, at: float | None = None) -> Any:
        started = self.clock()
        ok = False
        try:
            status, text = await self._get(query_params(query, at))
            ok = status == 200
            return document(self.address, query, status, text)
        finally:
            if self._observer is not None:
                self._observer.observe_query(self.clock() - started, ok)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        """The transport's session, made on first use (on the loop, as aiohttp requires)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size, ssl=self._ssl),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                trust_env=False,
            )
        return self._session

    async def _get(self, params: Mapping[str, str]) -> tuple[int, str]:
        """Status and body; connection errors and 502/503/504 retried, then a MetricsError."""
        attempt = 0
        while True:
            try:
                status, text = await self._get_once(params)
            except (aiohttp.ClientError, TimeoutError) as error:
                if attempt >= self.retries or isinstance(error, TimeoutError):
                    reason = str(error) or type(error).__name__
                    raise MetricsError(
                        f"Prometheus at {self.address} did not answer: {reason}"
                    ) from None
            else:
                if status not in RETRIED_STATUSES or attempt >= self.retries:
                    return status, text
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
            attempt += 1

    async def _get_once(self, params: Mapping[str, str]) -> tuple[int, str]:
        async with self.session().get(
            self.address + QUERY_PATH, params=params, proxy=self._proxy
        ) as response:
            return response.status, await response.text()
