"""FilterQL: the audience language of the Lytics platform, compiled to closures.

``compile_filter`` turns one ``FILTER …`` statement into a :class:`Filter` with ``matches`` and
``next_change``; ``compile_set`` compiles audiences that INCLUDE each other; ``parse_statements``
reads several statements. See docs/filterql.md for the language and its rules.
"""

from __future__ import annotations

from workers.filterql.compiler import compile_filter, compile_set
from workers.filterql.errors import FilterQLError
from workers.filterql.filter import Filter
from workers.filterql.functions import FUNCTION_NAMES
from workers.filterql.node import CNode
from workers.filterql.parser import parse_statements
from workers.filterql.syntax import Statement

__all__ = [
    "FUNCTION_NAMES",
    "CNode",
    "Filter",
    "FilterQLError",
    "Statement",
    "compile_filter",
    "compile_set",
    "parse_statements",
]
