"""The traffic generator: a gateway that obeys the HTTPRoute the operator manages.

Every ``poll_seconds`` it reads the HTTPRoute ``<rollout>`` and the Services its backendRefs
name, and resolves each Service to the running model server whose pod labels match the
Service's selector (as endpoints would). Then it sends ``rate`` requests per second to
127.0.0.1 (applicants drawn uniformly, or by a day/night ``MixCycle``): each one to a backend
drawn by the backendRefs' weights, plus a copy to the ``RequestMirror`` backend for
``percent`` % of them (mirrored answers are discarded).

A backend with weight but no running server is counted as ``noEndpoint`` (a gateway would
answer 503); no route at all is ``noRoute``. The generator stops by itself after ``duration``
seconds. Weight changes are kept as a timeline, for tests that measure how fast traffic moved.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from e2e.dataplane.controller import DataPlaneController, Pod
from e2e.dataplane.kube import KubeReader
from e2e.dataplane.population import MixCycle

log = logging.getLogger("dataplane.traffic")

TICK = 0.02


@dataclass(frozen=True)
class Routing:
    """What the route says: weighted backend Services and the mirror."""

    backends: tuple[tuple[str, int], ...] = ()
    mirror: tuple[str, int] | None = None

    @property
    def total(self) -> int:
        return sum(weight for _, weight in self.backends)


def routing_of(route: dict[str, Any] | None) -> Routing | None:
    """The first rule's weighted backends and mirror filter; None without a route."""
    if route is None:
        return None
    rules = (route.get("spec") or {}).get("rules") or []
    if not rules:
        return Routing()
    rule = rules[0]
    backends = tuple(
        (str(ref.get("name")), int(ref.get("weight", 1))) for ref in rule.get("backendRefs") or []
    )
    mirror = None
    for filter_ in rule.get("filters") or []:
        if filter_.get("type") == "RequestMirror":
            spec = filter_.get("requestMirror") or {}
            percent = spec.get("percent")
            if percent is None and spec.get("fraction"):
                fraction = spec["fraction"]
                percent = (
                    100
                    * int(fraction.get("numerator", 0))
                    // int(fraction.get("denominator") or 100)
                )
            name = str((spec.get("backendRef") or {}).get("name"))
            mirror = (name, int(100 if percent is None else percent))
    return Routing(backends, mirror)


class TrafficGenerator:
    """Sends bounded, weighted traffic to the model servers for a bounded time."""

    def __init__(
        self,
        kube: KubeReader,
        controller: DataPlaneController,
        rollout: str,
        *,
        rate: float = 200.0,
        duration: float = 600.0,
        workers: int = 48,
        poll_seconds: float = 1.0,
        seed: int | None = None,
        mix: MixCycle | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < rate <= 2000:
            raise ValueError("rate must be in (0, 2000] requests per second")
        self.kube = kube
        self.controller = controller
        self.rollout = rollout
        self.rate = rate
        self.duration = duration
        self.poll_seconds = poll_seconds
        self.rng = random.Random(seed)
        self.mix = mix
        self._sending_since = time.monotonic()
        self.on_change = on_change or (lambda message: log.info("%s", message))
        self.counts: Counter[str] = Counter()
        self.timeline: list[dict[str, Any]] = []
        self.routing: Routing | None = None
        self.targets: dict[str, Pod | None] = {}
        self.started_at: float | None = None
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._in_flight = 0
        self._max_in_flight = 4 * workers
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic")
        self._threads = [
            threading.Thread(target=self._send_loop, name="traffic-send", daemon=True),
            threading.Thread(target=self._route_loop, name="traffic-route", daemon=True),
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TrafficGenerator:
        self.started_at = time.time()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.finished.set()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
            timeline = list(self.timeline)
        routing = self.routing
        return {
            "rate": self.rate,
            "mix": None
            if self.mix is None
            else {
                "selector": dict(self.mix.selector),
                "share": round(self.mix.share(time.monotonic() - self._sending_since), 4),
                "periodSeconds": self.mix.period_s,
            },
            "duration": self.duration,
            "startedAt": self.started_at,
            "running": not self.finished.is_set(),
            "counts": counts,
            "routing": None
            if routing is None
            else {"backends": [list(b) for b in routing.backends], "mirror": routing.mirror},
            "targets": {k: (v.name if v else None) for k, v in self.targets.items()},
            "timeline": timeline,
        }

    # -- the route ---------------------------------------------------------------------------

    def _route_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as error:  # API away for a moment: keep the last routing
                self.count("routeReadErrors")
                log.warning("route read failed: %s", error)
            self._stop.wait(self.poll_seconds)

    def refresh(self) -> None:
        routing = routing_of(self.kube.httproute(self.rollout))
        services = set()
        if routing is not None:
            services = {name for name, _ in routing.backends}
            if routing.mirror:
                services.add(routing.mirror[0])
        pods = self.controller.snapshot()
        targets: dict[str, Pod | None] = {}
        for name in services:
            service = self.kube.service(name)
            selector = ((service or {}).get("spec") or {}).get("selector") or {}
            match = [p for p in pods if selector and selector.items() <= p.labels.items()]
            targets[name] = match[0] if match else None
        self.targets = targets
        if routing != self.routing:
            self._note_routing(routing)
        self.routing = routing

    def _note_routing(self, routing: Routing | None) -> None:
        entry: dict[str, Any] = {"time": time.time()}
        if routing is None:
            entry.update(route=False)
        else:
            weights = dict(routing.backends)
            entry.update(
                route=True,
                primary=weights.get(f"{self.rollout}-primary", 0),
                canary=weights.get(f"{self.rollout}-canary", 0),
                mirror=routing.mirror[1] if routing.mirror else 0,
            )
        with self._lock:
            self.timeline.append(entry)
        self.on_change(f"route now {entry}")

    # -- sending -----------------------------------------------------------------------------

    def count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[key] += amount

    def _send_loop(self) -> None:
        start = self._sending_since = time.monotonic()
        issued = 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - start
            if elapsed >= self.duration:
                break
            due = min(int(self.rate * elapsed) - issued, int(self.rate))
            for _ in range(max(due, 0)):
                self._issue()
            issued += max(due, 0)
            self._stop.wait(TICK)
        self.finished.set()
        self.on_change("traffic finished")

    def _issue(self) -> None:
        routing = self.routing
        if routing is None:
            self.count("noRoute")
            return
        if self.mix is None:
            person_id = self.rng.getrandbits(40)
        else:
            person_id = self.mix.draw(self.rng, time.monotonic() - self._sending_since)
        total = routing.total
        if total <= 0:
            self.count("noEndpoint")
        else:
            point = self.rng.uniform(0, total)
            chosen = routing.backends[-1][0]
            for name, weight in routing.backends:
                if point < weight:
                    chosen = name
                    break
                point -= weight
            self._submit(chosen, person_id, mirrored=False)
        if routing.mirror and self.rng.uniform(0, 100) < routing.mirror[1]:
            self._submit(routing.mirror[0], person_id, mirrored=True)

    def _submit(self, service: str, person_id: int, mirrored: bool) -> None:
        pod = self.targets.get(service)
        if pod is None:
            self.count("noEndpoint")
            return
        with self._lock:
            if self._in_flight >= self._max_in_flight:
                self.counts["dropped"] += 1
                return
            self._in_flight += 1
        try:
            self._pool.submit(self._request, pod, person_id, mirrored)
        except RuntimeError:  # pool shut down
            with self._lock:
                self._in_flight -= 1

    def _request(self, pod: Pod, person_id: int, mirrored: bool) -> None:
        kind = "mirrored" if mirrored else "sent"
        try:
            status = self._get(pod.address, f"/predict?id={person_id}")
            self.count(f"{kind}:{pod.deployment}")
            if status >= 500:
                self.count(f"5xx:{pod.deployment}")
        except OSError:
            self.count(f"connectErrors:{pod.deployment}")
        finally:
            with self._lock:
                self._in_flight -= 1

    def _get(self, address: str, path: str) -> int:
        connections: dict[str, http.client.HTTPConnection] = getattr(self._local, "connections", {})
        self._local.connections = connections
        for attempt in (1, 2):
            conn = connections.get(address)
            if conn is None:
                host, port = address.rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                connections[address] = conn
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                connections.pop(address, None)
                if attempt == 2:
                    raise OSError(f"request to {address} failed") from None
        raise AssertionError("unreachable")
