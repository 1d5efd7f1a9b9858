"""``fairshift run``: start the operator (kopf) for some namespaces or the whole cluster."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the operator")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeat)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument(
        "--standalone", action="store_true", help="one replica only: no peering (default)"
    )
    peering.add_argument("--peering", help="peering name, so two replicas never act on one rollout")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness URL")
    parser.add_argument("--metrics-port", type=int, default=9090, help="0 turns /metrics off")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--tick", type=float, default=5.0, help="seconds between reconciles")
    parser.add_argument(
        "--audit-configmap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also keep each rollout's audit chain in a ConfigMap",
    )
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("FAIRSHIFT_PROMETHEUS_ADDRESS"),
        help="Prometheus for rollouts that name none (default: $FAIRSHIFT_PROMETHEUS_ADDRESS)",
    )
    parser.add_argument(
        "--no-scanning",
        action="store_true",
        help="do not list CRDs and namespaces (namespaced RBAC without cluster-wide reads)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or KUBECONFIG)")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported here: kopf and the operator's clients are heavy, and `fairshift --help` is not
    import kopf
    from prometheus_client import start_http_server

    from fairshift.handlers import OperatorConfig, build_registry
    from fairshift.metrics.operator_metrics import OperatorMetrics, new_registry

    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(verbose=args.verbose, log_format=log_format)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's login reads it too
    logging.getLogger("fairshift").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:  # one line per timer tick and rollout is noise; decisions are logged
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics_registry = new_registry()
    metrics = OperatorMetrics(metrics_registry)
    if args.metrics_port:
        start_http_server(args.metrics_port, registry=metrics_registry)
    config = OperatorConfig(
        tick_seconds=args.tick,
        audit_configmap=args.audit_configmap,
        default_prometheus=args.prometheus,
        metrics=metrics,
        kubeconfig=args.kubeconfig,
    )
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = args.no_scanning
    asyncio.run(
        kopf.operator(
            settings=settings,
            registry=build_registry(args.tick),
            memo=kopf.Memo(config=config),
            standalone=not args.peering,
            peering_name=args.peering,
            # replicas with one priority all freeze; a random one lets exactly one act
            priority=random.SystemRandom().randint(1, 2**31 - 1) if args.peering else 0,
            liveness_endpoint=args.liveness or None,
            clusterwide=args.all_namespaces,
            namespaces=args.namespace,
        )
    )
    return 0
