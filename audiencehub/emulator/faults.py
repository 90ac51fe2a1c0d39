"""Run-time misbehaviour for the local hub: throttle, fail, delay, drop — the same plan for every face.

A plan is an ordered list of rules. For each data-plane request a face asks :meth:`FaultPlan.decide`
once, before doing any work, and gets a :class:`FaultDecision`: wait ``delay_ms``, then either carry
on, answer ``status`` (REST) / reject with ``amqp_condition`` (AMQP), or drop the connection.
Faults are decided before authentication and validation so "the next N requests" means exactly
the next N requests, whatever they carry; a faulted request stores nothing.

Rule fields (JSON):

- ``status``: 400..599 to answer with (429/503 get ``Retry-After``, default 1 s), or
- ``drop``: ``true`` / ``"after_body"`` (read the request, close without answering) or
  ``"after_headers"`` (close while the body is still arriving);
- ``delay_ms``: wait first (alone: a pure delay that lets the request proceed);
- ``share`` (0..1, default 1), ``count`` (fire at most N times), ``skip`` (let the first N matching
  requests through), ``duration_s`` (rule expires after that long);
- filters ``hub``, ``face`` ("rest" / "amqp") and ``op`` ("send", or "auth" for AMQP's CBS
  put-token); ``retry_after`` (s), ``message``, ``amqp_condition`` (override the status mapping).

A plan-level ``seed`` makes the share draws reproducible.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AMQP_CONDITIONS",
    "NO_FAULT",
    "FaultDecision",
    "FaultPlan",
    "FaultRule",
    "FaultSpecError",
    "amqp_condition_for",
]

#: The AMQP error condition a face should use for an injected HTTP-style status.
AMQP_CONDITIONS: dict[int, str] = {
    400: "amqp:invalid-field",
    401: "amqp:unauthorized-access",
    403: "amqp:unauthorized-access",
    404: "amqp:not-found",
    413: "amqp:link:message-size-exceeded",
    429: "com.microsoft:server-busy",
    500: "amqp:internal-error",
    503: "com.microsoft:server-busy",
}

_DROP_MODES = ("after_body", "after_headers")
_FACES = ("rest", "amqp")
_OPS = ("send", "auth")
_FIELDS = frozenset(
    {
        "status",
        "drop",
        "delay_ms",
        "share",
        "count",
        "skip",
        "duration_s",
        "hub",
        "face",
        "op",
        "retry_after",
        "message",
        "amqp_condition",
    }
)


def amqp_condition_for(status: int) -> str:
    """The AMQP condition matching an HTTP status (server errors default to internal-error)."""
    return AMQP_CONDITIONS.get(
        status, "amqp:internal-error" if status >= 500 else "amqp:not-allowed"
    )


class FaultSpecError(ValueError):
    """A fault rule is malformed; the message names the rule index and field."""


@dataclass(slots=True)
class FaultRule:
    """One rule and its live counters (mutated only under the plan's lock)."""

    status: int | None = None
    drop: str | None = None
    delay_ms: int = 0
    share: float = 1.0
    count: int | None = None
    skip: int = 0
    duration_s: float | None = None
    hub: str | None = None
    face: str | None = None
    op: str | None = None
    retry_after: int | None = None
    message: str | None = None
    amqp_condition: str | None = None
    # live state
    seen: int = 0
    fired: int = 0
    installed_at: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.status is not None or self.drop is not None

    def remaining(self) -> int | None:
        return None if self.count is None else max(0, self.count - self.fired)

    def expired(self, now: float) -> bool:
        return self.duration_s is not None and now - self.installed_at >= self.duration_s

    def to_json(self, index: int, now: float) -> dict[str, Any]:
        spec: dict[str, Any] = {"id": index}
        for name in sorted(_FIELDS):
            value = getattr(self, name)
            default = _DEFAULTS.get(name)
            if value is not None and value != default:
                spec[name] = value
        spec.update(
            seen=self.seen,
            fired=self.fired,
            remaining=self.remaining(),
            expired=self.expired(now),
        )
        return spec


_DEFAULTS: dict[str, Any] = {"delay_ms": 0, "share": 1.0, "skip": 0}


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What a face must do with one request."""

    delay_ms: int = 0
    status: int | None = None
    drop: str | None = None
    retry_after: int | None = None
    message: str = ""
    amqp_condition: str | None = None
    rules: tuple[int, ...] = ()

    @property
    def fails(self) -> bool:
        """The request must not be processed (answered with ``status`` or dropped)."""
        return self.status is not None or self.drop is not None

    @property
    def kind(self) -> str:
        """A short label for stats: ``503``, ``drop``, ``delay``, or ``none``."""
        if self.drop is not None:
            return "drop"
        if self.status is not None:
            return str(self.status)
        return "delay" if self.delay_ms else "none"


NO_FAULT = FaultDecision()


def _int(spec: Mapping[str, Any], name: str, where: str, lo: int, hi: int) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise FaultSpecError(f"{where}.{name}: must be an integer from {lo} to {hi}")
    return value


def _str(
    spec: Mapping[str, Any], name: str, where: str, choices: tuple[str, ...] = ()
) -> str | None:
    value = spec.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or (choices and value not in choices):
        allowed = f" (one of {', '.join(choices)})" if choices else ""
        raise FaultSpecError(f"{where}.{name}: must be a non-empty string{allowed}")
    return value


def parse_rule(spec: Any, index: int = 0) -> FaultRule:
    """Validate one rule's JSON; FaultSpecError names ``rules[i].field`` and what is wrong."""
    where = f"rules[{index}]"
    if not isinstance(spec, Mapping):
        raise FaultSpecError(f"{where}: must be a JSON object")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise FaultSpecError(
            f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})"
        )
    status = _int(spec, "status", where, 400, 599)
    raw_drop = spec.get("drop")
    drop: str | None
    if raw_drop is None or raw_drop is False:
        drop = None
    elif raw_drop is True:
        drop = "after_body"
    else:
        drop = _str(spec, "drop", where, _DROP_MODES)
    delay_ms = _int(spec, "delay_ms", where, 0, 600_000) or 0
    if status is not None and drop is not None:
        raise FaultSpecError(f"{where}: give either status or drop, not both")
    if status is None and drop is None and not delay_ms:
        raise FaultSpecError(f"{where}: needs status, drop or delay_ms")
    share = spec.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
        raise FaultSpecError(f"{where}.share: must be a number from 0 to 1")
    duration = spec.get("duration_s")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
    ):
        raise FaultSpecError(f"{where}.duration_s: must be a positive number of seconds")
    retry_after = _int(spec, "retry_after", where, 0, 86_400)
    if retry_after is None and status in (429, 503):
        retry_after = 1
    message = spec.get("message")
    if message is not None and not isinstance(message, str):
        raise FaultSpecError(f"{where}.message: must be a string")
    return FaultRule(
        status=status,
        drop=drop,
        delay_ms=delay_ms,
        share=float(share),
        count=_int(spec, "count", where, 0, 2**62),
        skip=_int(spec, "skip", where, 0, 2**62) or 0,
        duration_s=None if duration is None else float(duration),
        hub=_str(spec, "hub", where),
        face=_str(spec, "face", where, _FACES),
        op=_str(spec, "op", where, _OPS),
        retry_after=retry_after,
        message=message,
        amqp_condition=_str(spec, "amqp_condition", where),
    )


class FaultPlan:
    """The ordered rules and the RNG behind ``share``; thread-safe, shared by every face."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed: int | None = None
        self._rng = random.Random()

    def configure(self, spec: Any) -> None:
        """Replace the plan: ``{"seed": 7, "rules": [...]}``, a bare rule list, or one rule."""
        seed: int | None = None
        if isinstance(spec, Mapping) and "rules" in spec:
            extra = sorted(set(spec) - {"rules", "seed"})
            if extra:
                raise FaultSpecError(f"unknown field(s) {', '.join(extra)} (expected rules, seed)")
            raw_seed = spec.get("seed")
            if raw_seed is not None and (
                isinstance(raw_seed, bool) or not isinstance(raw_seed, int)
            ):
                raise FaultSpecError("seed: must be an integer")
            seed = raw_seed
            raw_rules = spec["rules"]
        elif isinstance(spec, Mapping):
            raw_rules = [spec]
        else:
            raw_rules = spec
        if not isinstance(raw_rules, list):
            raise FaultSpecError("rules: must be a list of rule objects")
        rules = [parse_rule(rule, i) for i, rule in enumerate(raw_rules)]
        now = time.monotonic()
        for rule in rules:
            rule.installed_at = now
        with self._lock:
            self._rules = rules
            self._seed = seed
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self._seed = None

    def decide(self, face: str, hub: str | None = None, op: str = "send") -> FaultDecision:
        """Consult the rules for one request (cheap when no rules are installed)."""
        if not self._rules:
            return NO_FAULT
        hub_key = hub.lower() if hub else None
        delay = 0
        fired: list[int] = []
        now = time.monotonic()
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.face is not None and rule.face != face:
                    continue
                if rule.op is not None and rule.op != op:
                    continue
                if rule.hub is not None and rule.hub.lower() != hub_key:
                    continue
                if rule.expired(now) or (rule.count is not None and rule.fired >= rule.count):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.share < 1.0 and self._rng.random() >= rule.share:
                    continue
                rule.fired += 1
                fired.append(index)
                delay += rule.delay_ms
                if rule.terminal:
                    status = rule.status
                    return FaultDecision(
                        delay_ms=delay,
                        status=status,
                        drop=rule.drop,
                        retry_after=rule.retry_after,
                        message=rule.message or f"injected fault (rule {index})",
                        amqp_condition=rule.amqp_condition
                        or (amqp_condition_for(status) if status is not None else None),
                        rules=tuple(fired),
                    )
        if not fired:
            return NO_FAULT
        return FaultDecision(delay_ms=delay, rules=tuple(fired))

    def describe(self) -> dict[str, Any]:
        """The installed rules with their counters, for ``GET /_emulator/faults``."""
        now = time.monotonic()
        with self._lock:
            return {
                "seed": self._seed,
                "rules": [rule.to_json(i, now) for i, rule in enumerate(self._rules)],
            }
