"""Tests of fairshift.k8s."""
