"""Several notifiers behind the reconciler's one ``notify`` port.

Each notifier takes the notifications of its own kind (webhooks, MLflow) and skips the
others; a notifier that raises is logged and does not keep the record from the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fairshift.api.notifications import Notification

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """What the executor hands every audit record to (the notifier port)."""

    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None: ...

    def problem(self, notifications: Sequence[Notification]) -> str | None:
        """Why evidence may not be reaching these notifications' sinks now, or None."""


class FanOut:
    """Hands every record to each of ``notifiers``, in order."""

    def __init__(self, *notifiers: Notifier) -> None:
        self.notifiers = notifiers

    def notify(
        self,
        namespace: str,
        rollout: str,
        record: Mapping[str, Any],
        notifications: Sequence[Notification] = (),
    ) -> None:
        for notifier in self.notifiers:
            try:
                notifier.notify(namespace, rollout, record, notifications)
            except Exception as error:  # one broken sink must not silence the others
                log.warning(
                    "%s could not take the record of %s/%s: %s",
                    type(notifier).__name__,
                    namespace,
                    rollout,
                    error,
                )

    def problem(self, notifications: Sequence[Notification]) -> str | None:
        """The first sink's problem with these notifications, if any has one."""
        found = (notifier.problem(notifications) for notifier in self.notifiers)
        return next((problem for problem in found if problem is not None), None)
