"""fairshift: progressive delivery of machine-learning models, gated on per-slice fairness."""

__version__ = "0.1.0"
