"""The golden corpus: random filters and profiles answered by the real qlbridge, checked every run.

tests/filterql/golden/cases.jsonl.gz holds what the qlbridge oracle (tools/qlbridge-oracle, at the
commit in the file's first line) answered for the generator's cases, plus issue 12's table and the
rules table of docs/filterql.md. Regenerate with the command in docs/filterql.md
("The reference: qlbridge itself").
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from typing import Any

from tests.filterql.golden.generate import GOLDEN, ORACLE_COMMIT
from workers.filterql import FilterQLError, compile_filter, compile_set, operators, parse_statements
from workers.filterql.walker import Walker
from workers.pipeline.profile import Profile
from workers.timefmt import parse_rfc3339


def _load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        return header, [json.loads(line) for line in fh]


def _answer(case: dict[str, Any]) -> tuple[bool | str, bool | None]:
    """(compiled answer or the compile error, the reference walker's answer)."""
    includes: dict[str, Any] = {}
    resolve = None
    if case.get("includes"):
        statements = parse_statements(case["includes"])
        includes = {st.alias or "": st for st in statements}
        compiled = compile_set({k: st.text for k, st in includes.items()})
        resolve = compiled.__getitem__
    try:
        f = compile_filter(case["filter"], resolve)
    except FilterQLError as exc:
        return f"refused: {exc}", None
    profile = Profile("u", fields=case["profile"])
    now = parse_rfc3339(case["now"])
    return f.matches(profile, now), Walker(includes).matches(f.statement, profile, now)


def test_the_golden_corpus_is_the_oracles() -> None:
    header, cases = _load()
    assert header["commit"] == ORACLE_COMMIT
    assert header["cases"] == len(cases) >= 5000
    sources = Counter(c["source"] for c in cases)
    assert sources["fixed"] >= 60, "issue 12's table and the docs' rules table are in it"


def test_every_golden_case_matches_qlbridge() -> None:
    """Each case: our member == qlbridge's, and the plain walker agrees with the compiled filter.
    A case may instead name the documented difference it falls under; with audiencehub's one
    extension switched off ("Dates in JSON") it must then agree too."""
    _header, cases = _load()
    wrong: list[str] = []
    for case in cases:
        ours, walked = _answer(case)
        want = case["member"]
        if case.get("difference") == "Dates in JSON":
            operators.JSON_DATES = False
            try:
                plain, _walked = _answer(case)
            finally:
                operators.JSON_DATES = True
            ok = plain == want and ours == (not want)
        else:
            ok = ours == want
        if not ok or walked != ours:
            wrong.append(
                f"{case['filter']!r} at {case['now']} with {json.dumps(case['profile'])}: "
                f"qlbridge {case['member']}, ours {ours}, walker {walked}"
            )
    assert not wrong, f"{len(wrong)} of {len(cases)} golden cases differ:\n" + "\n".join(wrong[:20])
