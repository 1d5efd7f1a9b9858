"""``python -m e2e.dataplane``: controller, model servers and traffic in one process.

It serves ``GET /stats`` (JSON: servers, traffic counts, route timeline) on 127.0.0.1, writes
the stats URL to ``--stats-file`` once listening, and exits by itself after ``--duration``
seconds (traffic stops; servers keep answering scrapes for ``--linger`` more seconds), or on
SIGTERM/SIGINT, removing its Prometheus targets.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from e2e.dataplane.controller import DataPlaneController
from e2e.dataplane.kube import KubeReader
from e2e.dataplane.population import MixCycle
from e2e.dataplane.traffic import TrafficGenerator

log = logging.getLogger("dataplane")


class DataPlane:
    """Controller + traffic generator for one rollout in one namespace."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.kube = KubeReader(args.kubeconfig, args.namespace)
        self.controller = DataPlaneController(
            self.kube, args.target, args.sd_dir, poll_seconds=args.poll
        )
        self.traffic = TrafficGenerator(
            self.kube,
            self.controller,
            args.rollout or args.target,
            rate=args.rate,
            duration=args.duration,
            poll_seconds=args.poll,
            seed=args.seed,
            mix=MixCycle.parse(args.mix, args.mix_period) if args.mix else None,
        )

    def start(self) -> DataPlane:
        self.controller.start()
        self.traffic.start()
        return self

    def stop(self) -> None:
        self.traffic.stop()
        self.controller.stop()
        self.kube.close()

    def stats(self) -> dict[str, Any]:
        return {
            "time": time.time(),
            "pods": [pod.describe() for pod in self.controller.snapshot()],
            "podHistory": list(self.controller.history),
            "controllerErrors": self.controller.errors,
            "traffic": self.traffic.stats(),
        }


def serve_stats(plane: DataPlane) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/stats":
                self.send_error(404)
                return
            data = json.dumps(plane.stats()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="stats", daemon=True).start()
    return httpd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2e.dataplane", description=__doc__)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--namespace", "-n", required=True)
    parser.add_argument("--target", required=True, help="the candidate Deployment's name")
    parser.add_argument("--rollout", help="the ModelRollout (and HTTPRoute) name; default target")
    parser.add_argument(
        "--sd-dir",
        default=os.environ.get("FAIRSHIFT_PROMETHEUS_SD_DIR"),
        help="Prometheus file-sd directory",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    parser.add_argument("--linger", type=float, default=5.0, help="seconds to stay after traffic")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between API reads")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--mix",
        help="a day/night mix: SELECTOR:LOW:HIGH, e.g. age_band=60+:0.05:0.6 (that group's "
        "share of requests cycles from LOW to HIGH and back every --mix-period seconds)",
    )
    parser.add_argument("--mix-period", type=float, default=120.0, help="seconds per cycle")
    parser.add_argument("--stats-file", help="write the /stats URL here once listening")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout
    )
    plane = DataPlane(args).start()
    httpd = serve_stats(plane)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/stats"
    if args.stats_file:
        tmp = Path(args.stats_file + ".tmp")
        tmp.write_text(url)
        tmp.replace(args.stats_file)
    log.info("stats at %s", url)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    deadline = time.monotonic() + args.duration + args.linger
    while not stopping.is_set() and time.monotonic() < deadline:
        stopping.wait(0.5)
    log.info("stopping")
    plane.stop()
    httpd.shutdown()
    log.info("final stats %s", json.dumps(plane.stats()["traffic"]["counts"], sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
