"""Decision quality: fairshift's engine against the rules peers use, on the same traffic.

``python -m bench.decisions [--seeds N] [--quick] [--out docs/benchmarks]`` simulates canary
steps (``world``, ``traffic``), scores every rollout with fairshift's engine and a naive
z-test (``engine_rule``), Flagger, Argo Rollouts and Kayenta (``points``, ``peers``), compares
with the fixed-sample oracle (``oracle``) and reports (``summary``, ``report``).
"""
