"""audiencehub: stream audience enter/exit triggers to Azure Event Hubs.

This package holds the interfaces (CLI, local hub stand-in, demo); the engine is ``workers`` and
the Celery app is ``tasks``.
"""

__version__ = "0.1.0"
