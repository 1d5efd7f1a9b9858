"""Rollout reports: charts of gate evidence, weights and decisions over time, as PNG and HTML.

``timeline`` turns audit records, a saved ModelRollout or a ``fairshift gate`` document into
``ReportData``; ``regions`` says where each gate's acceptable region lies on its estimate's
scale; ``charts`` draws PNGs with matplotlib (Agg, no pyplot state); ``page`` writes the
self-contained HTML page; ``building`` puts them together into a directory.
"""
