"""The Celery application, configured from ``celeryconfig``."""

from __future__ import annotations

from celery import Celery


def make_app(broker_url: str | None = None) -> Celery:
    """An app with every setting from ``celeryconfig``; ``broker_url`` overrides the broker only
    (for a client that talks to a Redis chosen at run time, such as a test's own server)."""
    application = Celery("audiencehub")
    application.config_from_object("celeryconfig")
    if broker_url:
        application.conf.broker_url = broker_url
    return application


app = make_app()
