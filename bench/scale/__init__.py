"""Scale benchmark of the fairshift operator: one process, N ModelRollouts, real cluster.

``python -m bench.scale`` creates N analysing rollouts on the local e2e control plane, feeds
the real Prometheus with synthetic convention metrics, runs one operator process and measures
its CPU, memory, reconcile latency and Prometheus queries (see ``bench.scale.__main__``).
"""
