"""The jobs dashboard: server-rendered pages at ``/ui/`` over the same engine calls as the API.

``UiGate`` (audiencehub/ui/app.py) is the one thing the API mounts. See docs/dashboard.md.
"""
