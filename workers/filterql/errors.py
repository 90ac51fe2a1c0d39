"""The one error type of FilterQL: where it went wrong and what was expected there."""

from __future__ import annotations


class FilterQLError(ValueError):
    """Bad FilterQL text, or a filter that cannot be compiled (unknown function, INCLUDE cycle…).

    ``line``/``column`` are 1-based and point at the offending character; ``expected`` lists what
    the parser could have accepted there (empty for errors found after parsing); ``text`` is the
    whole source. ``str()`` is one sentence that says all of it.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int = 1,
        column: int = 1,
        expected: list[str] | None = None,
        text: str = "",
    ) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.expected = list(expected or [])
        self.text = text
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def source_line(self) -> str:
        """The offending line of the source (for a caret display)."""
        lines = self.text.splitlines() or [""]
        if 1 <= self.line <= len(lines):
            return lines[self.line - 1]
        return ""

    def caret(self) -> str:
        """The offending line and a caret under the column, for terminals."""
        src = self.source_line()
        pad = "".join("\t" if ch == "\t" else " " for ch in src[: max(self.column - 1, 0)])
        return f"{src}\n{pad}^"
