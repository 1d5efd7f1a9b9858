"""Tests of the cluster-facing CLI commands and of fairshift report."""
