"""Metric sources: Prometheus (the metric convention and custom PromQL gates) and files."""
