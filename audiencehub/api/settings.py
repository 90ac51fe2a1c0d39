"""Settings of the HTTP API, read from the environment like the engine's (workers/config.py).

They live here, not in ``workers.config``, because only the API process needs them: workers and
beat never accept connections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from workers.config import ConfigError, Settings

DEFAULT_MAX_BODY = 5 * 1024 * 1024
MIN_TOKEN_CHARS = 16
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """``tokens`` empty means no authentication, which only demo and test modes allow."""

    tokens: tuple[str, ...]
    max_body: int
    metrics_public: bool
    forwarded_allow_ips: str = ""
    """Proxies whose X-Forwarded-Proto/-For are believed (uvicorn's list: IPs, CIDRs or '*');
    empty: none, so the scheme is the connection's own."""

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens)


def load_api_settings(cfg: Settings) -> ApiSettings:
    """Read ``AUDIENCEHUB_API_*``; refuse an open API in production (the message says the fix)."""
    raw_tokens = os.environ.get("AUDIENCEHUB_API_TOKENS", "")
    tokens = tuple(t.strip() for t in raw_tokens.split(",") if t.strip())
    if not tokens and cfg.mode == "production":
        raise ConfigError(
            "AUDIENCEHUB_API_TOKENS is not set: the API refuses to run without authentication in "
            "production. Set it to one or more comma-separated bearer tokens (e.g. from "
            "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'), or set "
            "AUDIENCEHUB_MODE=demo for a throwaway local setup"
        )
    short = [i + 1 for i, t in enumerate(tokens) if len(t) < MIN_TOKEN_CHARS]
    if short and cfg.mode == "production":
        raise ConfigError(
            f"AUDIENCEHUB_API_TOKENS: token(s) number {', '.join(map(str, short))} are shorter "
            f"than {MIN_TOKEN_CHARS} characters; use long random tokens"
        )
    raw_max = os.environ.get("AUDIENCEHUB_API_MAX_BODY", "")
    try:
        max_body = int(raw_max) if raw_max.strip() else DEFAULT_MAX_BODY
    except ValueError:
        raise ConfigError(
            f"AUDIENCEHUB_API_MAX_BODY={raw_max!r} is not a number of bytes (e.g. 5242880)"
        ) from None
    if not 1024 <= max_body <= 1024 * 1024 * 1024:
        raise ConfigError(
            f"AUDIENCEHUB_API_MAX_BODY={max_body} must be between 1024 and 1073741824 bytes"
        )
    metrics_public = os.environ.get("AUDIENCEHUB_API_METRICS_PUBLIC", "").lower() in _TRUE
    forwarded = os.environ.get("AUDIENCEHUB_API_FORWARDED_ALLOW_IPS", "").strip()
    return ApiSettings(
        tokens=tokens,
        max_body=max_body,
        metrics_public=metrics_public,
        forwarded_allow_ips=forwarded,
    )
