"""fairshift benchmarks: decision quality against peers' rules and the fixed-sample oracle.

Benchmarks report figures; they are not tests. Run them as modules, e.g.
``python -m bench.decisions --quick``.
"""
