"""The objects of the scale benchmark: a dedicated fake node, target Deployments, rollouts.

Every pod of the benchmark runs on ``scale-node-0``, a kwok node tainted
``fairshift.io/bench=scale:NoSchedule`` (so no other workload lands there and the shared
node's pod capacity stays free); the benchmark's pods tolerate the taint and select the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NODE = "scale-node-0"
TAINT_KEY = "fairshift.io/bench"
TAINT_VALUE = "scale"
BENCH_LABEL = "fairshift.io/bench"
IMAGE = "registry.invalid/fairshift-bench/model"
STABLE_TAG = "v1"
CANDIDATE_TAG = "v2"
SELECTOR = 'namespace="{{namespace}}",version="{{version}}"'
"""Matches the exporter's target labels; rendered per rollout and version by the operator."""

GATES: tuple[dict[str, Any], ...] = (
    {"name": "equal-opportunity", "metric": "tpr_gap", "maxIncrease": 0.05, "severity": "critical"},
    {"name": "four-fifths", "metric": "disparate_impact", "min": 0.8, "severity": "critical"},
    {"name": "accuracy", "metric": "accuracy", "maxDecrease": 0.02, "severity": "critical"},
    {"name": "latency", "metric": "latency_p99", "max": 0.5, "severity": "critical"},
    {"name": "score-drift", "metric": "score_psi", "max": 0.1, "severity": "warning"},
)


def node(pods: int) -> dict[str, Any]:
    """The kwok node all benchmark pods run on."""
    capacity = {"cpu": "1000", "memory": "4Ti", "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                BENCH_LABEL: TAINT_VALUE,
            },
        },
        "spec": {"taints": [{"key": TAINT_KEY, "value": TAINT_VALUE, "effect": "NoSchedule"}]},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {BENCH_LABEL: TAINT_VALUE}},
    }


def target(name: str, tag: str = STABLE_TAG) -> dict[str, Any]:
    """A model server Deployment (replicas 1) whose pods go to the benchmark's node."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {BENCH_LABEL: TAINT_VALUE}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [
                        {
                            "key": TAINT_KEY,
                            "operator": "Equal",
                            "value": TAINT_VALUE,
                            "effect": "NoSchedule",
                        }
                    ],
                    "containers": [{"name": "model", "image": f"{IMAGE}:{tag}"}],
                },
            },
        },
    }


def image_patch(name: str, tag: str) -> dict[str, Any]:
    """A strategic-merge patch that changes the model image (a new revision)."""
    containers = [{"name": "model", "image": f"{IMAGE}:{tag}"}]
    return {"spec": {"template": {"spec": {"containers": containers}}}}


def rollout(
    name: str,
    attributes: Sequence[str],
    prometheus: str,
    interval: str,
    analyze: str = "30m",
) -> dict[str, Any]:
    """A ModelRollout: Gateway API routing, 10% canary, one long analysis step, five gates."""
    return {
        "apiVersion": "fairshift.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name, "labels": {BENCH_LABEL: TAINT_VALUE}},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": name},
            "service": {"port": 8080},
            "routing": {
                "gatewayAPI": {
                    "parentRefs": [{"name": "public", "namespace": "gateways"}],
                    "hostnames": [f"{name}.example.com"],
                }
            },
            "strategy": {
                "canary": {"steps": [{"setWeight": 10}, {"analyze": {"duration": analyze}}]}
            },
            "analysis": {
                "interval": interval,
                "prometheus": {"address": prometheus, "timeout": "10s"},
                "selector": SELECTOR,
                "slices": {
                    "attributes": list(attributes),
                    "intersections": True,
                    "reference": "majority",
                    "minSamples": 100,
                },
                "alpha": 0.05,
                "gates": [dict(gate) for gate in GATES],
            },
            "onFailure": "rollback",
            "onInconclusive": "pause",
        },
    }
