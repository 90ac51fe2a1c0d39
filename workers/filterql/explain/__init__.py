"""Explain one filter's answer for one profile: the filter as a tree of clause values, what decided
it, and the next change in words, all read off the compiled closures that decide membership.

``explain`` builds an :class:`Explanation` (build.py); ``render`` prints its JSON as text
(text.py); the next change's sentence is change.py's.
"""

from __future__ import annotations

from workers.filterql.explain.build import explain
from workers.filterql.explain.explanation import Change, Clause, Explanation, Read, Window
from workers.filterql.explain.text import jsonable, render, rfc, show_value

__all__ = [
    "Change",
    "Clause",
    "Explanation",
    "Read",
    "Window",
    "explain",
    "jsonable",
    "render",
    "rfc",
    "show_value",
]
