"""Renders the ModelRollout CustomResourceDefinition from the pydantic models.

The pydantic JSON Schema is turned into a Kubernetes *structural* schema: references inlined,
optional unions flattened, JSON-Schema-only keywords dropped, exclusive bounds written the
OpenAPI v3.0 way, CEL rules kept. A map (``dict[str, X]``) keeps ``additionalProperties``
with its value schema: an object with neither properties nor a value schema is pruned to
``{}`` by the API server, so every key written into it would be silently lost. The committed
``crds/modelrollouts.yaml`` must equal this rendering (a test checks it).
"""

from __future__ import annotations

from typing import Any

from fairshift.api import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from fairshift.api.spec import ModelRolloutSpec
from fairshift.api.status import ModelRolloutStatus

DROPPED_KEYWORDS = {"title", "$defs", "examples"}
EXCLUSIVE_BOUNDS = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}
"""JSON Schema 2020 writes ``exclusiveMinimum: 0``; OpenAPI v3.0 (Kubernetes) ``minimum: 0,
exclusiveMinimum: true``."""

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Step", "type": "integer", "jsonPath": ".status.currentStep"},
    {"name": "Canary%", "type": "integer", "jsonPath": ".status.canaryWeight"},
    {"name": "Verdict", "type": "string", "jsonPath": ".status.verdict"},
    {"name": "Health", "type": "string", "jsonPath": ".status.guard.health"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableRevision", "priority": 1},
    {
        "name": "Candidate",
        "type": "string",
        "jsonPath": ".status.candidateRevision",
        "priority": 1,
    },
    {"name": "Mirror%", "type": "integer", "jsonPath": ".status.mirrorPercent", "priority": 1},
    {"name": "Fallback%", "type": "integer", "jsonPath": ".status.fallbackWeight", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def structural(node: Any, definitions: dict[str, Any]) -> Any:
    """A structural-schema copy of a pydantic JSON Schema node."""
    if isinstance(node, list):
        return [structural(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, definitions)
    if "anyOf" in node:
        return structural(flatten_optional(node), definitions)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        return structural(merged, definitions)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYWORDS:
            continue
        if key == "const":
            result["enum"] = [value]
        elif key == "description":
            result[key] = tidy_description(value)
        elif key == "default" and value is None:
            continue
        elif key in EXCLUSIVE_BOUNDS:
            result[EXCLUSIVE_BOUNDS[key]] = value
            result[key] = True
        elif key == "properties":
            result[key] = {name: structural(sub, definitions) for name, sub in value.items()}
        elif key == "additionalProperties":
            if isinstance(value, dict):  # a map's value schema; ``false`` (extra=forbid) goes
                result[key] = structural(value, definitions)
        else:
            result[key] = structural(value, definitions)
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    return result


def flatten_optional(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` (an optional field) becomes X; other unions are not structural."""
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    if len(options) != 1:
        raise ValueError(f"a CRD schema cannot hold the union {node['anyOf']!r}")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**options[0], **rest}


def tidy_description(text: str) -> str:
    """Plain text for ``kubectl explain``: no reStructuredText double backquotes."""
    return " ".join(text.replace("``", "").split())


def object_schema(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.get("$defs", {})
    rendered: dict[str, Any] = structural(schema, definitions)
    return rendered


def render_crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a dict ready to dump to YAML."""
    spec_schema = object_schema(ModelRolloutSpec)
    status_schema = object_schema(ModelRolloutStatus)
    status_schema.pop("required", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all", "fairshift"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A progressive rollout of a model, gated on "
                            "per-slice fairness, quality, latency and drift.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }
