"""The rules of an AppRelease, with no I/O: the API model, the parsed spec, image references, conditions and
reasons, limits, the typed workload model and the pure decisions (what to pin, what failed, what to roll back to).

Nothing here imports kopf, the Kubernetes client or an HTTP library: every module is a pure function of its
inputs, so the operator (controller/) and the CLI (cli/) share one judgement.
"""
