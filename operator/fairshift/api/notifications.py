"""The ``notifications`` block: webhooks, Slack and MLflow tracking servers, with Secrets."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from fairshift.api.schema import NAME_PATTERN, Model, count_set, rules


class SecretKeyRef(Model):
    """A key of a Secret in the ModelRollout's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class UrlFrom(Model):
    """Where a webhook URL is kept."""

    secret_key_ref: SecretKeyRef


class Webhook(Model):
    """A webhook: the URL from a Secret, in the generic JSON or the Slack format."""

    url_from: UrlFrom
    format: Literal["generic", "slack"] = "generic"


class SecretRef(Model):
    """A Secret in the ModelRollout's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)


class MLflowCredentials(Model):
    """A Secret holding ``MLFLOW_TRACKING_TOKEN``, or ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD`` (the names MLflow's own client reads)."""

    secret_ref: SecretRef


class MLflowRegisteredModel(Model):
    """The registered model version this rollout serves: by number or by alias."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('version', 'alias')} == 1",
                "mlflow.registeredModel needs exactly one of version or alias",
            )
        )
    )

    name: str = Field(min_length=1, max_length=256)
    version: str | None = Field(default=None, pattern=r"^[1-9][0-9]*$", max_length=20)
    alias: str | None = Field(default=None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_-]*$", max_length=255)

    @model_validator(mode="after")
    def version_or_alias(self) -> MLflowRegisteredModel:
        if (self.version is None) == (self.alias is None):
            raise ValueError("mlflow.registeredModel needs exactly one of version or alias")
        return self


class MLflow(Model):
    """An MLflow tracking server that receives every decision of the rollout: a run per
    candidate revision with the gates' estimates and bounds per slice, the decisions, and
    at the end the report and the model card."""

    tracking_uri: str = Field(pattern=r"^https?://", max_length=2048)
    experiment: str = Field(min_length=1, max_length=500)
    registered_model: MLflowRegisteredModel | None = None
    credentials: MLflowCredentials | None = None


class Notification(Model):
    """Where decisions are announced: a webhook (pause, rollback, promotion, failure) or an
    MLflow tracking server (every decision and its evidence)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                f"{count_set('webhook', 'mlflow')} == 1",
                "a notification needs exactly one of webhook or mlflow",
            )
        )
    )

    webhook: Webhook | None = None
    mlflow: MLflow | None = None

    @model_validator(mode="after")
    def exactly_one_sink(self) -> Notification:
        if (self.webhook is None) == (self.mlflow is None):
            raise ValueError("a notification needs exactly one of webhook or mlflow")
        return self
