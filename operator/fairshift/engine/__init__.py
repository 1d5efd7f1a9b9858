"""The pure decision engine: counts in, metrics, statistics, gate outcomes and decisions out.

Nothing in this package performs I/O, reads the clock, or imports kopf, kubernetes or a
Prometheus client; time arrives as a parameter.
"""
