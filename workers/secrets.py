"""Secrets at rest: connection strings are stored Fernet-encrypted, never in clear.

The key comes from ``AUDIENCEHUB_SECRET_KEY`` (``audiencehub secret-key`` prints a new one). Demo and
test modes fall back to a fixed, publicly known key so they run with nothing set; production
refuses to start without a real one.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from workers.config import ConfigError, Settings

_INSECURE_DEV_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"audiencehub demo/test mode only - not a secret").digest()
)


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode("utf-8"))

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken:
            raise ConfigError(
                "a stored secret cannot be decrypted with AUDIENCEHUB_SECRET_KEY; it was written "
                "with another key (set the key it was created with, or re-create the authorization)"
            ) from None


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def secret_box(cfg: Settings) -> SecretBox:
    if cfg.secret_key:
        try:
            return SecretBox(cfg.secret_key.encode("ascii"))
        except ValueError:
            raise ConfigError(
                "AUDIENCEHUB_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                "make one with 'audiencehub secret-key'"
            ) from None
    if cfg.mode in ("demo", "test"):
        return SecretBox(_INSECURE_DEV_KEY)
    raise ConfigError(
        "AUDIENCEHUB_SECRET_KEY is not set; secrets are encrypted at rest with it. Make one with "
        "'audiencehub secret-key' (or set AUDIENCEHUB_MODE=demo for a throwaway setup)"
    )
