"""``fairshift run``: start the operator (kopf) for some namespaces or the whole cluster.

``--shards N`` makes this process one of several active replicas: each works the rollouts of
the shards whose coordination.k8s.io Leases it holds (``k8s.sharding``). Sharded replicas run
kopf standalone: kopf peering would pause every replica but one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import socket
from typing import TYPE_CHECKING, Any

from fairshift.commands.exitcodes import ExitCode
from fairshift.commands.invocation import fail

if TYPE_CHECKING:
    from fairshift.k8s.sharding import ShardSettings

DEFAULT_LEASE_SECONDS = 20.0
DEFAULT_LONGEST_WAIT = 30.0


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
    parser.add_argument(
        "--shards",
        type=int,
        default=int(os.environ.get("FAIRSHIFT_SHARDS") or 0),
        help="share rollouts among replicas in this many shards held with Leases "
        "(default: $FAIRSHIFT_SHARDS, else 0: one replica works every rollout)",
    )
    parser.add_argument(
        "--shard-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="namespace of the shard Leases (default: $POD_NAMESPACE)",
    )
    parser.add_argument(
        "--shard-identity",
        default=os.environ.get("POD_ID") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name in the Leases (default: $POD_ID, else host and pid)",
    )
    parser.add_argument(
        "--shard-group", default="fairshift", help="prefix of the Lease names (default fairshift)"
    )
    parser.add_argument(
        "--shard-lease-seconds",
        type=float,
        default=DEFAULT_LEASE_SECONDS,
        help="a dead replica's shards move after this long (default 20; work stops at 60%%)",
    )
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness URL")
    parser.add_argument("--metrics-port", type=int, default=9090, help="0 turns /metrics off")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--tick",
        type=float,
        default=DEFAULT_LONGEST_WAIT,
        help="the longest a rollout waits between looks, whatever its plan asks (default 30 "
        "seconds); each rollout is looked at when its plan's next check comes, at once when "
        "a person changes it",
    )
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

    try:
        sharding = shard_settings(args)
    except ValueError as error:
        return fail("run", str(error), ExitCode.USAGE)
    if not args.tick > 0:
        return fail(
            "run", f"--tick must be a positive number of seconds, got {args.tick:g}", ExitCode.USAGE
        )
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
        longest_wait=args.tick,
        audit_configmap=args.audit_configmap,
        default_prometheus=args.prometheus,
        metrics=metrics,
        kubeconfig=args.kubeconfig,
        sharding=sharding,
    )
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = args.no_scanning
    asyncio.run(
        kopf.operator(
            settings=settings,
            registry=build_registry(),
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


def shard_settings(args: argparse.Namespace) -> ShardSettings | None:
    """The sharding asked for, or None; ``ValueError`` says what is wrong with the flags."""
    from fairshift.k8s.sharding import ShardSettings

    if not args.shards:
        return None
    if args.peering:
        raise ValueError(
            "--shards and --peering exclude each other: sharded replicas all work (each its "
            "shards), kopf peering would pause all but one"
        )
    if not args.shard_namespace:
        raise ValueError("--shards needs --shard-namespace (or $POD_NAMESPACE) for the Leases")
    duration = args.shard_lease_seconds
    return ShardSettings(
        shards=args.shards,
        namespace=args.shard_namespace,
        identity=args.shard_identity,
        group=args.shard_group,
        lease_duration=duration,
        renew_deadline=duration * 0.6,
        retry=duration * 0.2,
    )
