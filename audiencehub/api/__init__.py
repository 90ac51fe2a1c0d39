"""The HTTP API (FastAPI, served by uvicorn): ``audiencehub api``. See docs/api.md."""

from __future__ import annotations

from audiencehub.api.app import create_app

__all__ = ["create_app"]
