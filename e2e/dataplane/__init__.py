"""The simulated data plane of the fairshift e2e suite and demo.

Pods under kwok are fake, so the model servers run as local threads on 127.0.0.1:

* ``population`` - synthetic applicants with slice attributes and ground truth, and a binary
  classifier with injectable per-slice bias, latency, errors and score drift (``SIM_MODEL``);
* ``server`` - one model server (own registry and port) emitting ``fairshift_instrument``'s
  metric convention, labels delivered late;
* ``controller`` - runs one server per scaled-up Deployment (``<target>``, ``<target>-primary``)
  configured from its pod template, restarts it when the template changes, registers it in
  Prometheus through file-sd;
* ``traffic`` - a generator that obeys the operator's HTTPRoute (weights and mirror);
* ``__main__`` - all of it in one process, with a JSON ``/stats`` endpoint, stopping by itself.

Run: ``python -m e2e.dataplane --namespace NS --target credit-scorer --rate 200 --duration 600``
from the repository root.
"""
