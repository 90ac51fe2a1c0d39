"""Resolving names given in a request body: a missing one is a 422 naming the field.

A name in the path that does not exist is a 404 (the resource is not there); a name inside a body
is a bad value of that body (422), and the message says which entry of which list.
"""

from __future__ import annotations

from collections.abc import Sequence

from audiencehub.api.errors import ApiError
from workers.audiences.registry_store import NotFound
from workers.engine import Engine


def audience_id(e: Engine, ref: str, field: str = "audience") -> str:
    try:
        return e.audiences.get(ref).id
    except NotFound as exc:
        raise ApiError(
            422, f"{field}: {exc}; create it first (POST /audiences)", field=field
        ) from None


def audience_ids(e: Engine, refs: Sequence[str], field: str = "audiences") -> list[str]:
    return [audience_id(e, ref, f"{field}[{i}]") for i, ref in enumerate(refs)]


def auth_id(e: Engine, ref: str, field: str = "authorization") -> str:
    try:
        return e.auths.get(ref).id
    except NotFound as exc:
        raise ApiError(
            422, f"{field}: {exc}; create it first (POST /authorizations)", field=field
        ) from None
