"""The operator around kopf: handlers, runtime and work queue, reconciler, convergence, reporting, the
Kubernetes adapter and metrics. Decisions come from apprelease.core; registry I/O from apprelease.registry.
"""
