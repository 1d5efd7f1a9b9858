"""Check manifests rendered by `helm template charts/fairshift` for the chart's invariants.

    helm template ... | python3 charts/check_rendered.py [--expect-kind Kind ...] [--name NAME]

Checked on every rendering:
- no Role or ClusterRole grants a wildcard (`*`) verb, resource, API group, resource name or
  non-resource URL, nor one of the privilege-escalating verbs (escalate, bind, impersonate);
- Secrets are readable only with `get` and only by name (resourceNames);
- the operator container runs as non-root user 10001, read-only root filesystem, all
  capabilities dropped, no privilege escalation, RuntimeDefault seccomp, /tmp an emptyDir,
  liveness and readiness probes on :8080/healthz, resource requests and limits;
- exactly one of --standalone / --peering (sharded replicas: --standalone), and one of
  --all-namespaces / --namespace.

Exit status 0 when all hold, 1 with one line per violation otherwise. Only PyYAML is needed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

WILDCARD = "*"
ESCALATING_VERBS = {"escalate", "bind", "impersonate"}


def rbac_violations(doc: dict[str, Any]) -> list[str]:
    """Wildcards, escalating verbs and unrestricted Secret access in one Role/ClusterRole."""
    where = f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}"
    problems: list[str] = []
    for i, rule in enumerate(doc.get("rules") or []):
        for field in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
            values = rule.get(field) or []
            if any(WILDCARD in str(v) for v in values):
                problems.append(f"{where} rule {i}: wildcard in {field}: {values}")
        if "nonResourceURLs" in rule:
            problems.append(f"{where} rule {i}: nonResourceURLs are not needed")
        bad_verbs = ESCALATING_VERBS & set(rule.get("verbs") or [])
        if bad_verbs:
            problems.append(f"{where} rule {i}: escalating verbs {sorted(bad_verbs)}")
        if "secrets" in (rule.get("resources") or []):
            if set(rule.get("verbs") or []) != {"get"}:
                problems.append(f"{where} rule {i}: secrets with verbs other than get")
            if not rule.get("resourceNames"):
                problems.append(f"{where} rule {i}: secrets without resourceNames")
    return problems


def operator_violations(doc: dict[str, Any]) -> list[str]:
    """The hardening and the command line of the operator Deployment."""
    pod = doc["spec"]["template"]["spec"]
    problems: list[str] = []
    containers = pod.get("containers") or []
    if len(containers) != 1:
        return [f"Deployment {doc['metadata']['name']}: expected one container"]
    c = containers[0]
    sc = c.get("securityContext") or {}
    psc = pod.get("securityContext") or {}
    expected = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    for key, value in expected.items():
        if sc.get(key, psc.get(key)) != value:
            problems.append(f"operator securityContext.{key} is not {value}")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
        problems.append("operator does not drop ALL capabilities")
    seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("operator seccompProfile is not RuntimeDefault")
    tmp_mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    if not tmp_mounts or "emptyDir" not in volumes.get(tmp_mounts[0]["name"], {}):
        problems.append("operator has no emptyDir at /tmp")
    for probe in ("livenessProbe", "readinessProbe"):
        get = (c.get(probe) or {}).get("httpGet") or {}
        port = get.get("port")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
        if get.get("path") != "/healthz" or ports.get(port, port) != 8080:
            problems.append(f"operator {probe} is not on :8080/healthz")
    res = c.get("resources") or {}
    if not res.get("requests") or not res.get("limits"):
        problems.append("operator has no resource requests and limits")
    if c.get("command") != ["fairshift", "run"]:
        problems.append(f"operator command is {c.get('command')}, not [fairshift, run]")
    args = [str(a) for a in c.get("args") or []]
    if ("--standalone" in args) == ("--peering" in args):
        problems.append("operator needs exactly one of --standalone and --peering")
    if "--shards" in args and "--standalone" not in args:
        problems.append("sharded replicas must run --standalone (kopf peering pauses all but one)")
    if ("--all-namespaces" in args) == ("--namespace" in args):
        problems.append("operator needs exactly one of --all-namespaces and --namespace")
    if "--liveness" not in args or "--metrics-port" not in args or "--log-format" not in args:
        problems.append("operator misses --liveness, --metrics-port or --log-format")
    env = {e["name"] for e in c.get("env") or []}
    if "FAIRSHIFT_PROMETHEUS_ADDRESS" not in env:
        problems.append("operator has no FAIRSHIFT_PROMETHEUS_ADDRESS")
    return problems


def check(docs: Iterable[dict[str, Any] | None], expect_kinds: Iterable[str] = ()) -> list[str]:
    """All violations in a rendering; `expect_kinds` must each appear at least once."""
    problems: list[str] = []
    kinds: set[str] = set()
    operators = 0
    for doc in docs:
        if not doc:
            continue
        kinds.add(doc["kind"])
        if doc["kind"] in ("Role", "ClusterRole"):
            problems += rbac_violations(doc)
        if doc["kind"] == "Deployment":
            operators += 1
            problems += operator_violations(doc)
    if operators != 1:
        problems.append(f"expected one Deployment, found {operators}")
    problems += [f"no {k} rendered" for k in expect_kinds if k not in kinds]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="rendered manifests (default: stdin)")
    parser.add_argument("--expect-kind", action="append", default=[], metavar="KIND")
    parser.add_argument("--name", default="rendering", help="label for the report")
    args = parser.parse_args(argv)
    texts = [Path(f).read_text() for f in args.files] if args.files else [sys.stdin.read()]
    docs = [d for t in texts for d in yaml.safe_load_all(t)]
    problems = check(docs, args.expect_kind)
    for p in problems:
        print(f"{args.name}: {p}", file=sys.stderr)
    if not problems:
        kinds = sorted({d["kind"] for d in docs if d})
        print(f"{args.name}: ok ({len([d for d in docs if d])} objects: {', '.join(kinds)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
