"""Audiences: a slug, a 32-hex id and a FilterQL filter, stored as definitions in Redis."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import cast

from workers.audiences.registry_store import ATTEMPTS, Conflict, DefinitionStore, NotFound, new_id
from workers.filterql import FilterQLError, compile_set
from workers.keys import Keys
from workers.redisconn import Redis, as_bytes

SLUG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Audience:
    id: str
    slug: str
    filter: str
    includes: tuple[str, ...]
    created: int
    updated: int
    description: str = ""


def _from_raw(d: dict[str, object]) -> Audience:
    return Audience(
        id=str(d["id"]),
        slug=str(d["slug"]),
        filter=str(d["filter"]),
        includes=tuple(cast(list[str], d.get("includes") or [])),
        created=int(cast(int, d["created"])),
        updated=int(cast(int, d["updated"])),
        description=str(d.get("description", "")),
    )


class AudienceStore(DefinitionStore):
    def __init__(self, r: Redis, keys: Keys) -> None:
        super().__init__(r, keys, keys.audiences)

    def all(self) -> list[Audience]:
        return sorted((_from_raw(d) for d in self.raw_all()), key=lambda a: a.slug)

    def get(self, id_or_slug: str) -> Audience:
        d = self.raw_get(id_or_slug)
        if d is None:
            found = as_bytes(self.r.hget(self.keys.audience_slugs, id_or_slug))
            d = self.raw_get(found.decode()) if found else None
        if d is None:
            raise NotFound(f"no audience with id or slug {id_or_slug!r}")
        return _from_raw(d)

    def _check(self, slug: str, text: str, replacing: str | None = None) -> tuple[str, ...]:
        """Compile the new filter together with every audience it can include; refuse errors."""
        texts = {a.slug: a.filter for a in self.all() if a.slug != replacing}
        texts[slug] = text
        try:
            compiled = compile_set(texts)
        except FilterQLError as exc:
            raise Conflict(f"audience {slug!r}: {exc}") from None
        return tuple(sorted(compiled[slug].includes))

    def create(self, slug: str, text: str, description: str = "") -> Audience:
        if not SLUG_RE.match(slug):
            raise Conflict(
                f"slug {slug!r} must be 1-128 letters, digits, '_' or '-', not starting with '-'"
            )
        for _ in range(ATTEMPTS):
            version = self.version()
            if self.r.hexists(self.keys.audience_slugs, slug):
                raise Conflict(f"an audience with slug {slug!r} exists already")
            includes = self._check(slug, text)
            now = time.time_ns()
            audience = Audience(new_id(), slug, text.strip(), includes, now, now, description)
            if not self.r.hsetnx(self.keys.audience_slugs, slug, audience.id):
                raise Conflict(f"an audience with slug {slug!r} exists already")
            if self.raw_put_if(audience.id, asdict(audience), version):
                return audience
            self.r.hdel(self.keys.audience_slugs, slug)  # the registry moved: check again
        raise Conflict("the audiences kept changing while this one was checked; try again")

    def update_filter(self, id_or_slug: str, text: str) -> Audience:
        for _ in range(ATTEMPTS):
            version = self.version()
            current = self.get(id_or_slug)
            includes = self._check(current.slug, text, replacing=current.slug)
            updated = Audience(
                current.id,
                current.slug,
                text.strip(),
                includes,
                current.created,
                time.time_ns(),
                current.description,
            )
            if self.raw_put_if(updated.id, asdict(updated), version):
                return updated
        raise Conflict("the audiences kept changing while this one was checked; try again")
