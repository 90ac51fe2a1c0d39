"""Registrable domains (``books.amazon.co.uk`` -> ``amazon.co.uk``) for FilterQL's ``domain()``.

The Public Suffix List comes from the ``publicsuffixlist`` package, which ships a dated copy, so
every host answers alike (the system's ``/usr/share/publicsuffix`` is absent on many). The reading
of the list is Go's ``x/net/publicsuffix``, which qlbridge calls, not the package's: Go holds the
rules in ASCII (``公司.cn`` as ``xn--55qx5d.cn``), so a host written in Unicode meets only the
default rule; a wildcard rule's parent (``kobe.jp`` for ``*.kobe.jp``) is no suffix unless listed;
and a trailing dot is an error, not ignored. The real qlbridge answers all three this way.
"""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PSLFILE, encode_idn


@lru_cache(maxsize=1)
def _rules() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(rules, parents of wildcard rules, exceptions), every rule in ASCII as Go's table has it."""
    rules: set[str] = set()
    wild: set[str] = set()
    exceptions: set[str] = set()
    with open(PSLFILE, encoding="utf-8") as lines:
        for line in lines:
            words = line.split()
            if not words or words[0].startswith("//"):
                continue
            rule = words[0].lower()
            if not rule.isascii():
                try:
                    rule = encode_idn(rule)
                except UnicodeError:  # a label Python's IDNA codec refuses: Go's table lacks it too
                    continue
            if rule.startswith("!"):
                exceptions.add(rule[1:])
            elif rule.startswith("*."):
                wild.add(rule[2:])
            else:
                rules.add(rule)
    return frozenset(rules), frozenset(wild), frozenset(exceptions)


def public_suffix(domain: str) -> str:
    """The public suffix of a domain (the PSL algorithm, "*" as the default rule)."""
    rules, wild, exceptions = _rules()
    labels = domain.split(".")
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if candidate in exceptions:
            return ".".join(labels[i + 1 :])
        if candidate in rules:
            return candidate
        if i + 1 < len(labels) and ".".join(labels[i + 1 :]) in wild:
            return candidate
    return labels[-1]


def effective_tld_plus_one(domain: str) -> str | None:
    """The registrable domain (Go's ``EffectiveTLDPlusOne``), or None where Go gives an error."""
    if not domain or domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    suffix = public_suffix(domain)
    if len(domain) <= len(suffix):
        return None
    head = domain[: len(domain) - len(suffix) - 1]
    return head.rpartition(".")[2] + "." + suffix
