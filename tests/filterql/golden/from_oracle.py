"""Regenerate ``like.jsonl``, ``todate.jsonl`` and ``domain.jsonl``: answers of the real qlbridge.

    .venv/bin/python tests/filterql/golden/from_oracle.py /work/qlbridge-oracle/out/qlfilter

Patterns, layouts and values travel as profile fields (``FILTER host LIKE pat``), so no
string-literal escaping stands between them and the Go code.

LIKE: each case asks ``host LIKE pat`` and ``NOT (host LIKE pat)``: true, false, or null when
neither holds (qlbridge's "not ok": a malformed pattern reached while matching).

todate(layout, value): the oracle says whether Go's time.Parse accepted it (``EXISTS todate(…)``)
and whether the instant equals ours to the second (qlbridge compares whole seconds); a case is kept
only when the oracle confirms our answer, and the file holds our nanoseconds (null: refused). The
oracle reads a date-looking field as a time before todate sees it, so such a case disagrees and is
printed, not kept.

domain(url): the registrable domain Go's ``x/net/publicsuffix`` gives, found by asking which of the
host's suffixes ``domain(u)`` equals (null: none, Go's error). The hosts lean on long-standing rules
(wildcards, exceptions, IDN, ports), so a newer list in the ``publicsuffixlist`` package keeps them.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.filterql.layouts import parse_layout  # noqa: E402
from workers.timefmt import format_rfc3339  # noqa: E402

NOW = "2026-01-01T00:00:00Z"
PATTERN_PARTS = ["a", "b", "/", "*", "*", "**", "?", "[", "]", "^", "-", "\\", "%", "é", "€", "."]
VALUE_PARTS = ["a", "b", "/", ".", "é", "€", "*", "\\", "-", "]", "a", "b"]
CHOSEN = [
    ("*.*.*.com", "a.b.c.com"),
    ("*.*.*.com", "a.b/c.com"),
    ("*[a/]*c", "a/xc"),  # a class may match '/', and '*' takes the first fit for good
    ("**a*b", "a/xab"),  # '**' takes a chunk where it stands
    ("**/blog/*", "/blog/x/blog/y"),
    ("**/blog/**", "https://x.com/blog/post"),
    ("a[", "ab"),  # malformed, reached with text left: not ok
    ("a[", "a"),  # malformed, never reached: false
    ("[]a]", "a"),
    ("[^a]", "b"),
    ("[!a]", "b"),
    ("a\\*", "a*"),
    ("a\\*", "ab"),
    ("a\\%", "a*"),  # '%' becomes '*' before the glob reads the escape
    ("a\\", "a"),
    ("a\\", "ab"),
    ("A*", "abc"),
    ("a%c", "abbc"),
    ("a?c", "a/c"),
    ("a**", "a/b/c"),
    ("a*", "a/b"),
    ("*", ""),
    ("", ""),
    ("", "a"),
    ("[a-c]*", "b/"),
    ("[c-a]", "b"),
    ("**ab**x", "ab/abx"),
    ("**a**b", "xaxxb"),
]


def ask(oracle: str, queries: list[tuple[str, dict[str, str]]]) -> list[bool]:
    lines = [json.dumps({"filter": f, "profile": p, "now": NOW}) for f, p in queries]
    answers = subprocess.run(
        [oracle], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [bool(json.loads(a)["matches"]) for a in answers]


def like_cases(oracle: str, seed: int = 13, count: int = 1200) -> None:
    rng = random.Random(seed)
    cases = list(CHOSEN)
    for _ in range(count):
        p = "".join(rng.choice(PATTERN_PARTS) for _ in range(rng.randint(0, 8)))
        v = "".join(rng.choice(VALUE_PARTS) for _ in range(rng.randint(0, 9)))
        cases.append((p, v))
    answers = ask(
        oracle,
        [
            (f, {"host": v, "pat": p})
            for p, v in cases
            for f in ("FILTER host LIKE pat", "FILTER NOT (host LIKE pat)")
        ],
    )
    with (HERE / "like.jsonl").open("w", encoding="utf-8") as out:
        for (p, v), yes, no in zip(cases, answers[0::2], answers[1::2], strict=True):
            want = True if yes else False if no else None
            out.write(json.dumps({"pattern": p, "value": v, "like": want}, ensure_ascii=False))
            out.write("\n")


ELEMENTS = ["2006", "06", "01", "1", "Jan", "January", "02", "2", "_2", "Mon", "Monday", "15"]
ELEMENTS += ["03", "3", "04", "4", "05", "5", "PM", "pm", "MST", "Z07:00", "-0700", "-07", "Z0700"]
ELEMENTS += ["-07:00", ".000", ".999", "002", "__2", ",000", "Z07", "-070000", "Z07:00:00"]
LITERALS = [" ", "/", "-", ":", "T", ",", "  ", "x", "."]
SAMPLES = {
    "Jan": ["Mar", "jan", "JAN", "Sept"],
    "January": ["April", "september", "Octob"],
    "Mon": ["Tue", "sun", "Mo"],
    "Monday": ["Tuesday", "friday", "Satur"],
    "PM": ["AM", "PM", "am"],
    "pm": ["am", "pm", "PM"],
    "MST": ["UTC", "PST", "GMT+3", "CEST", "ABCDEF", "ChST", "GMT", "WITA"],
    "Z07:00": ["Z", "+07:00", "-03:30", "+0700"],
    "-0700": ["+0700", "-0330", "Z"],
    "-07": ["+07", "-11"],
    "Z0700": ["Z", "+0100"],
    "-07:00": ["+05:30", "-0800"],
    ".000": [".123", ".12", ",123", ".1234"],
    ".999": [".5", ".123456789123", "", ".x"],
    ",000": [",123", ".123"],
    "Z07": ["Z", "+03"],
    "-070000": ["+010203"],
    "Z07:00:00": ["Z", "+01:02:03"],
}


def sample(rng: random.Random, element: str) -> str:
    if element in SAMPLES:
        return rng.choice(SAMPLES[element])
    width = {"2006": 4, "002": 3, "__2": 3}.get(element, 2 if element[0] in "0_1" else 1)
    if element in ("1", "2", "3", "4", "5"):
        width = rng.choice([1, 2])
    high = {"2006": 2040, "002": 366, "__2": 366}.get(element, 59)
    number = rng.randint(1960 if element == "2006" else 0, high)
    text = str(number).rjust(width, " " if element[0] == "_" else "0")[-width:]
    return text


def todate_cases(oracle: str, seed: int = 17, count: int = 1500) -> None:
    rng = random.Random(seed)
    cases = [("Monday" * 30, "Monday" * 29 + "x"), ("01/02/2006", "07/04/2014")]
    cases += [("1/2/06", "4/7/14"), ("Jan 2, 2006 3:04:05 PM", "Apr 7, 2014 4:58:55 PM")]
    for _ in range(count):
        layout_parts: list[str] = []
        value_parts: list[str] = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.65:
                element = rng.choice(ELEMENTS)
                layout_parts.append(element)
                value_parts.append(sample(rng, element))
            else:
                text = rng.choice(LITERALS)
                layout_parts.append(text)
                value_parts.append(text if rng.random() < 0.9 else rng.choice(LITERALS))
        got = "".join(value_parts)
        if got and rng.random() < 0.15:
            i = rng.randrange(len(got))
            got = got[:i] + rng.choice("0123456789 :.-ZaX") + got[i + 1 :]
        cases.append(("".join(layout_parts), got))
    ours = [parse_layout(layout, value) for layout, value in cases]
    queries: list[tuple[str, dict[str, str]]] = []
    for (layout, value), ns in zip(cases, ours, strict=True):
        ref = format_rfc3339(ns) if ns is not None and ns >= 0 else "2000-01-01T00:00:00Z"
        fields = {"lay": layout, "val": value, "ref": ref}
        queries += [("FILTER EXISTS todate(lay, val)", fields)]
        queries += [("FILTER todate(lay, val) == ref", fields)]
    answers = ask(oracle, queries)
    with (HERE / "todate.jsonl").open("w", encoding="utf-8") as out:
        for (layout, value), ns, parsed, same in zip(
            cases, ours, answers[0::2], answers[1::2], strict=True
        ):
            agrees = not parsed if ns is None else parsed and (same or ns < 0)
            if not agrees:
                print("oracle disagrees, not kept:", repr(layout), repr(value))
                continue
            row = {"layout": layout, "value": value, "ns": ns}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


HOSTS = [
    "books.amazon.co.uk",
    "EXAMPLE.Com",
    "example.com:8080",
    "www.example.com:8080",
    "https://sub.example.org/path?q",
    "http://x.blogspot.com",
    "user@host.example.com",
    "example.zzz",
    "a.b.example.zzz",
    "co.uk",
    "uk",
    "a.uk",
    "a.sch.uk",
    "b.a.sch.uk",
    "kobe.jp",
    "www.kobe.jp",
    "city.kobe.jp",
    "www.city.kobe.jp",
    "a.b.kobe.jp",
    "x.ck",
    "www.ck",
    "a.www.ck",
    "github.io",
    "foo.github.io",
    "a.b.foo.github.io",
    "xn--85x722f.xn--55qx5d.cn",
    "食狮.公司.cn",
    "www.食狮.公司.cn",
    "",
    "x",
    "ab",
    "abc",
    "a..b.com",
    ".a.com",
    "a.com.",
    "http://",
    "https://user:pw@x.example.net",
]


def _suffixes(value: str) -> list[str]:
    """Where domain(value) could land: each dot-suffix of the value's host (the oracle judges)."""
    url = value.lower() if value.lower().startswith("http") else "http://" + value.lower()
    labels = urlsplit(url).netloc.rpartition("@")[2].split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def domain_cases(oracle: str) -> None:
    queries: list[tuple[str, dict[str, str]]] = []
    for host in HOSTS:
        queries += [("FILTER EXISTS domain(u)", {"u": host})]
        queries += [("FILTER domain(u) == d", {"u": host, "d": c}) for c in _suffixes(host)]
    answers = iter(ask(oracle, queries))
    with (HERE / "domain.jsonl").open("w", encoding="utf-8") as out:
        for host in HOSTS:
            exists = next(answers)
            equal = [c for c in _suffixes(host) if next(answers)]
            if exists and not equal:
                raise SystemExit(
                    f"domain({host!r}): the oracle's answer is none of {_suffixes(host)}"
                )
            got = equal[0] if exists else None
            out.write(json.dumps({"value": host, "domain": got}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    like_cases(sys.argv[1])
    todate_cases(sys.argv[1])
    domain_cases(sys.argv[1])
