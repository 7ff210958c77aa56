"""Starts the kopf operator with our handlers, from `apprelease run`."""

from __future__ import annotations

import logging

import kopf

from apprelease.controller.settings import OperatorSettings


def run_operator() -> None:
    settings = OperatorSettings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kopf reports every handled watch event at INFO; our own log says what matters.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # httpx reports every registry request at INFO; failures reach our log through the reconciler.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import apprelease.controller.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.run(
        standalone=True,
        clusterwide=not settings.watch_namespaces,
        namespaces=settings.watch_namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )
