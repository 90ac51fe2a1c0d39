"""What a shard stream carries: data events, profile score updates and re-evaluation requests.

All three go through the user's shard so the shard's drainer stays the only writer of that user.
Each stream entry has one field, ``d``, holding the JSON below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

Kind = Literal["e", "s", "r"]
DATA: Kind = "e"
SCORE: Kind = "s"
REEVALUATE: Kind = "r"
PAGE = "R"
"""A page of re-evaluations (``{"k": "R", "u": [ids], "a": [audiences]}``): one stream entry for
a thousand users, so re-checking a whole audience costs few entries."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One unit of work for a user.

    ``e``: a data event (fields merged, occurrence recorded); ``s``: a score update (fields merged,
    no occurrence); ``r``: re-check the user's audiences now (``audiences`` empty = every audience).
    """

    kind: Kind
    user_id: str
    ts: int = 0
    name: str | None = None
    fields: dict[str, Any] | None = None
    audiences: tuple[str, ...] = ()

    def encode(self) -> bytes:
        d: dict[str, Any] = {"k": self.kind, "u": self.user_id}
        if self.kind == REEVALUATE:
            if self.audiences:
                d["a"] = list(self.audiences)
            return orjson.dumps(d)
        return encode_change(self.kind, self.user_id, self.ts, self.name, self.fields)

    @classmethod
    def decode(cls, raw: bytes) -> list[Entry]:
        """The entries one stream entry stands for (several for a page)."""
        d = orjson.loads(raw)
        if d["k"] == PAGE:
            audiences = tuple(d.get("a", ()))
            return [cls(REEVALUATE, uid, audiences=audiences) for uid in d["u"]]
        audiences = d.get("a")  # positional and no empty tuple built: once per drained event
        return [
            cls(
                d["k"],
                d["u"],
                d.get("t", 0),
                d.get("n"),
                d.get("f"),
                tuple(audiences) if audiences else (),
            )
        ]


def encode_change(
    kind: Kind, user_id: str, ts: int, name: str | None, fields: dict[str, Any] | None
) -> bytes:
    """A data or score entry's bytes, as ``Entry.encode`` writes them, without building the
    Entry."""
    return orjson.dumps(change_dict(kind, user_id, ts, name, fields))


def change_dict(
    kind: Kind, user_id: str, ts: int, name: str | None, fields: dict[str, Any] | None
) -> dict[str, Any]:
    """What :func:`encode_change` encodes: validation builds it for each incoming event and
    encodes a request's together in one call."""
    d: dict[str, Any] = {"k": kind, "u": user_id, "t": ts, "f": fields or {}}
    if name:
        d["n"] = name
    return d


def encode_page(user_ids: list[str], audiences: list[str]) -> bytes:
    return orjson.dumps({"k": PAGE, "u": user_ids, "a": audiences})
