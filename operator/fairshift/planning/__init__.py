"""The planner: what a rollout should do next, decided without touching the world.

``plan`` turns (spec, typed status, one observed snapshot, the analysis result, now) into a
``Plan``: the new status, the audit records to append first, the writes to Kubernetes, the
Events and the time of the next check. Nothing here performs I/O, imports kopf or a client,
or reads the clock; import-linter enforces the first two and a unit test the last.
"""
