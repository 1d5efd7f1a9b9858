"""Building blocks of the ModelRollout API models: camelCase on the wire, CEL twins of checks.

Every cross-field rule of the API has a twin CEL rule (``x-kubernetes-validations``) so the API
server refuses the same specs at admission with the same message; ``api.crd`` renders both."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from fairshift.api.durations import DURATION_PATTERN

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
REFERENCE_PATTERN = (
    r"^(majority|worst|[a-zA-Z_][a-zA-Z0-9_]*=[^,=]+(,[a-zA-Z_][a-zA-Z0-9_]*=[^,=]+)*)$"
)

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]

CEL = "x-kubernetes-validations"


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """CEL rules for the CRD schema of a model: ``(rule, message)`` pairs."""
    return {CEL: [{"rule": rule, "message": message} for rule, message in pairs]}


def count_set(*fields: str) -> str:
    """A CEL expression counting how many of ``fields`` are set on ``self``."""
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)


class Model(BaseModel):
    """Base for API objects: camelCase on the wire, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )
