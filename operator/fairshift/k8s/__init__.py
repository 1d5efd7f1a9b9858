"""The Kubernetes layer: the only modules that import the kubernetes client."""
