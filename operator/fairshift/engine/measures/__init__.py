"""Gate measurements, one implementation per metric family behind ``base.MetricMeasure``.

``engine.harm`` holds the registry that picks the family of a gate; each module here puts one
family's gates on a test scale (see ``base.Measurement``).
"""
