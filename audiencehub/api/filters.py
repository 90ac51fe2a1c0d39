"""FilterQL for the API: compile against the stored audiences, and read profiles sent as JSON.

Mirrors ``audience validate`` / ``audience eval`` (audiencehub/cli/filterql.py) without click,
and resolves INCLUDE against the audiences actually stored, so "valid" here means "creating or
editing an audience with this filter would be accepted".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audiencehub.api.errors import ApiError, filterql_error
from workers.audiences.store import AudienceStore
from workers.filterql import Filter, FilterQLError, compile_filter, compile_set
from workers.pipeline.profile import Profile
from workers.pipeline.profiles import DocumentError, from_document
from workers.timefmt import parse_rfc3339

CANDIDATE = " candidate"
"""Key of an unnamed filter inside a compile set; a slug can never contain a space."""


def compile_candidate(store: AudienceStore, text: str, slug: str | None = None) -> Filter:
    """Compile ``text`` as audience ``slug`` among the stored ones (replacing it if it exists).

    Raises an ApiError (422) with line, column and caret, like the store would refuse it.
    """
    key = slug or CANDIDATE
    texts = {a.slug: a.filter for a in store.all() if a.slug != slug}
    texts[key] = text
    try:
        return compile_set(texts)[key]
    except FilterQLError as exc:
        raise filterql_error(exc, "filter", text) from None
    except RecursionError:
        raise ApiError(422, "filter: nested too deeply; flatten it", field="filter") from None


def compile_with(text: str, includes: Mapping[str, Filter]) -> Filter:
    """Compile one filter whose INCLUDEs resolve to ``includes`` (exact slug, then any case)."""
    lower = {k.lower(): f for k, f in includes.items()}

    def resolve(slug: str) -> Filter:
        found = includes.get(slug) or lower.get(slug.lower())
        if found is None:
            raise FilterQLError(
                f"unknown audience {slug!r} (give it in `includes` or create it first)"
            )
        return found

    try:
        return compile_filter(text, resolve)
    except FilterQLError as exc:
        raise filterql_error(exc, "filter", text) from None
    except RecursionError:
        raise ApiError(422, "filter: nested too deeply; flatten it", field="filter") from None


def parse_time(value: Any, field: str) -> int:
    """RFC 3339 text or integer nanoseconds, else a 422 naming ``field``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_rfc3339(value)
        except ValueError:
            pass
    raise ApiError(
        422,
        f"{field}: {str(value)[:60]!r} is not a time; use RFC 3339 (2026-11-27T09:30:00Z) or "
        "integer nanoseconds since the epoch",
        field=field,
    )


def profile_from_json(data: dict[str, Any]) -> Profile:
    """A profile as ``audience eval --profile`` reads it (workers.pipeline.profiles.from_document), with
    a malformed part answered as a 422 naming ``profile.<field>``."""
    try:
        return from_document(data)
    except DocumentError as exc:
        raise ApiError(422, f"profile.{exc}", field=f"profile.{exc.field}") from None
