"""fairshift end-to-end suite: a real control plane and Prometheus (see README.md)."""
