"""Secrets at rest: connection strings are stored Fernet-encrypted, never in clear.

The keys come from ``AUDIENCEHUB_SECRET_KEY`` (``audiencehub secret-key`` prints a new one): one
key, or several separated by commas, newest first. Secrets are sealed with the first and opened
with whichever matches (cryptography's MultiFernet), so a key is rotated without downtime: put
the new key in front of the old one on every process, run ``audiencehub secret rotate`` (which
re-seals every stored secret with the new key), then drop the old key.

Demo and test modes fall back to a fixed, publicly known key so they run with nothing set;
production refuses to start without a real one.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from workers.config import ConfigError, Settings

_INSECURE_DEV_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"audiencehub demo/test mode only - not a secret").digest()
)


class SecretUnreadable(ConfigError):
    """A stored secret opens with none of the configured keys (a rotated or mixed-up key)."""


UNREADABLE = (
    "it was sealed with a key that is not in AUDIENCEHUB_SECRET_KEY (rotated or mixed up). Put "
    "that key back in the list (new key first, comma-separated), run 'audiencehub secret "
    "rotate', or create the authorization again"
)


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode("utf-8"))

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable(f"a stored secret cannot be decrypted: {UNREADABLE}") from None

    def reseal(self, sealed: bytes) -> bytes:
        """The same secret sealed with the first key (for ``secret rotate``)."""
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken:
            raise SecretUnreadable(f"a stored secret cannot be decrypted: {UNREADABLE}") from None


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def secret_box(cfg: Settings) -> SecretBox:
    if cfg.secret_key:
        keys = [k.strip() for k in cfg.secret_key.split(",") if k.strip()]
        for number, key in enumerate(keys, start=1):
            try:
                Fernet(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                which = f"key number {number} of " if len(keys) > 1 else ""
                raise ConfigError(
                    f"AUDIENCEHUB_SECRET_KEY: {which}the value is not a Fernet key (32 url-safe "
                    "base64 bytes); make one with 'audiencehub secret-key'"
                ) from None
        if keys:
            return SecretBox([k.encode("ascii") for k in keys])
    if cfg.mode in ("demo", "test"):
        return SecretBox([_INSECURE_DEV_KEY])
    raise ConfigError(
        "AUDIENCEHUB_SECRET_KEY is not set; secrets are encrypted at rest with it. Make one with "
        "'audiencehub secret-key' (or set AUDIENCEHUB_MODE=demo for a throwaway setup)"
    )
