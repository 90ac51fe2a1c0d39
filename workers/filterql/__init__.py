"""FilterQL: the audience language of the Lytics platform, compiled to closures.

``compile_filter`` turns one ``FILTER …`` statement into a :class:`Filter` with ``matches`` and
``next_change``; ``compile_set`` compiles audiences that INCLUDE each other; ``parse_statements``
reads several statements. See docs/filterql.md for the language and its rules.
"""

from __future__ import annotations

from workers.filterql.compiler import CNode, Filter, compile_filter, compile_set
from workers.filterql.errors import FilterQLError
from workers.filterql.functions import FUNCTION_NAMES
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
