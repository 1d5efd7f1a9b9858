"""Tests of fairshift.routing."""
