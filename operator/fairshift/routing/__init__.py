"""Traffic routers: one protocol, one implementation per mesh (Gateway API, Istio, replicas)."""
