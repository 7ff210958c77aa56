"""`apprelease run`: the operator itself, for development against a cluster."""

from __future__ import annotations


def run() -> None:
    """Run the operator against the current KUBECONFIG (or in-cluster credentials)."""
    from apprelease.controller.runner import run_operator  # kopf only loads for this command

    run_operator()
