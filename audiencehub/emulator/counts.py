"""What the faces did, for ``/_emulator/stats``: requests by face and status, events stored by
face, and faults fired. Plain counters; the store keeps them under its lock.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["Counts"]


class Counts:
    """Every data-plane request's outcome (0: connection dropped), per face, since the last reset."""

    def __init__(self) -> None:
        self.requests: dict[str, Counter[int]] = {}
        self.events_by_face: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def request(self, face: str, status: int) -> None:
        counter = self.requests.get(face)
        if counter is None:
            counter = self.requests[face] = Counter()
        counter[status] += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def by_face(self) -> dict[str, Any]:
        return {
            face: {
                "total": sum(counter.values()),
                "by_status": {str(k): v for k, v in sorted(counter.items())},
            }
            for face, counter in self.requests.items()
        }

    def rejections(self) -> dict[str, int]:
        """Refused requests by status, all faces together ("dropped" for dropped connections)."""
        rejections: Counter[str] = Counter()
        for counter in self.requests.values():
            for status, n in counter.items():
                if status >= 400 or status == 0:
                    rejections["dropped" if status == 0 else str(status)] += n
        return dict(sorted(rejections.items()))

    def clear(self) -> None:
        self.requests.clear()
        self.events_by_face.clear()
        self.faults.clear()
