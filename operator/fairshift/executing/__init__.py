"""The executor: observe once, let the planner decide, write the audit record first, then act."""
