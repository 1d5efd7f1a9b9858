"""Deliver decision notifications to webhooks, without ever holding up or breaking a rollout.

:class:`Notifier` resolves each webhook's URL through the function it is given (the k8s layer
reads the Secret), builds the payload (``notify.messages``) and POSTs it as JSON. Connection
errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff, a bounded number of
times and within a deadline; anything else (a missing Secret, a 4xx, an unknown format) is
logged and reported as ``False``. Nothing here raises to the caller. URLs are secrets and are
never logged: a webhook is named by its Secret and key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any
from urllib.parse import urlparse

import requests

from fairshift.api.notifications import Notification, Webhook
from fairshift.notify.messages import DecisionEvent, Payload, payload_for, should_notify

log = logging.getLogger(__name__)

ResolveUrl = Callable[[str, str, str], str]
"""``resolve_url(namespace, secret_name, key)`` -> the webhook URL (may raise)."""

RETRIED_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class Notifier:
    """Sends decision notifications to the webhooks of a rollout.

    Each webhook gets at most ``attempts`` POSTs of at most ``timeout_seconds`` each, waiting
    ``backoff_seconds``, then twice that, ... between them, and no retry starts after
    ``deadline_seconds`` (defaults: 3 tries, 2 s, 0.5 s, 9 s: under 10 s per webhook). With
    an ``executor``, :meth:`notify` hands the work to it and returns at once.
    """

    def __init__(
        self,
        resolve_url: ResolveUrl,
        *,
        timeout_seconds: float = 2.0,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        deadline_seconds: float = 9.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
        executor: Executor | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("a webhook needs at least one attempt")
        self._resolve_url = resolve_url
        self.timeout_seconds = timeout_seconds
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.deadline_seconds = deadline_seconds
        self._sleep = sleep
        self._clock = clock
        self._session = session or requests.Session()
        self._executor = executor

    def problem(self, notifications: Sequence[Notification]) -> str | None:
        """Webhooks are fire-and-forget: a failed delivery is logged, never a condition."""
        return None

    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None:
        """Announce a decision record to ``notifications`` (the spec's), if its action is news."""
        if self._executor is None:
            self.deliver(namespace, rollout, record, notifications)
            return
        try:
            self._executor.submit(self.deliver, namespace, rollout, record, notifications)
        except Exception as error:  # a shut-down executor must not break the reconcile
            log.warning("notification for %s/%s not queued: %s", namespace, rollout, error)

    def deliver(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification],
    ) -> list[bool]:
        """Send now; one result per webhook, ``[]`` when the action is not announced.

        Notifications that are not webhooks (MLflow) are another sink's and are skipped.
        """
        webhooks = [n.webhook for n in notifications if n.webhook is not None]
        try:
            if not webhooks or not should_notify(record.get("action", "")):
                return []
            event = DecisionEvent.from_record(namespace, rollout, record)
        except Exception as error:
            log.warning("notification for %s/%s not built: %s", namespace, rollout, error)
            return [False for _ in webhooks]
        return [self.send(event, webhook) for webhook in webhooks]

    def send(self, event: DecisionEvent, webhook: Webhook) -> bool:
        """POST the event to one webhook; True once it answered 2xx. Never raises."""
        ref = webhook.url_from.secret_key_ref
        name = f"webhook {event.namespace}/{ref.name}[{ref.key}]"
        try:
            url = self._resolve_url(event.namespace, ref.name, ref.key)
            payload = payload_for(webhook.format, event)
        except Exception as error:
            log.warning("%s: not sent: %s", name, error)
            return False
        if urlparse(url).scheme not in ("http", "https"):
            log.warning("%s: not sent: the Secret does not hold an http(s) URL", name)
            return False
        return self.post(name, url, payload)

    def post(self, name: str, url: str, payload: Payload) -> bool:
        """POST with bounded retries; True on 2xx. Never raises."""
        started = self._clock()
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            retry, problem = self.attempt(url, payload)
            if problem is None:
                return True
            elapsed = self._clock() - started
            last = attempt == self.attempts or elapsed + delay > self.deadline_seconds
            if not retry or last:
                log.warning("%s: not delivered after %d attempt(s): %s", name, attempt, problem)
                return False
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", name, attempt, problem, delay)
            self._sleep(delay)
            delay *= 2
        return False

    def attempt(self, url: str, payload: Payload) -> tuple[bool, str | None]:
        """One POST: ``(worth retrying, problem)``; the problem is None on success."""
        try:
            response = self._session.post(
                url, json=payload, timeout=self.timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as error:
            return True, type(error).__name__
        except Exception as error:  # e.g. a payload that is not JSON-serialisable
            return False, f"{type(error).__name__}: {error}"
        if 200 <= response.status_code < 300:
            return False, None
        return response.status_code in RETRIED_STATUS, f"HTTP {response.status_code}"
