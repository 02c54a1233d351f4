"""An adapter's symbol → provider id table, kept compact: one text blob and an index of offsets.

Tables at the size of Chainlink's (CoinGecko's has 11 307 symbols) cost about 3 MiB per worker as a ``dict`` of
strings, which every worker holds for the life of the process. Here they cost the text itself (about 250 KiB)
plus 4 bytes per symbol, and a lookup is a binary search over the sorted, upper-cased symbols.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable


class SymbolTable:
    """Upper-cased symbol → id; the first id given for a symbol wins. Read-only, so safe across threads."""

    __slots__ = ("_size", "_starts", "_text")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._text, self._starts, self._size = "", array("I"), 0
        self.fill(pairs)

    def fill(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Replace the contents (before the table is shared). Made apart from the constructor so a table can be
        created before a large file is parsed: nothing of the table then sits among the parse's short-lived
        objects, whose memory goes back to the system once they are freed."""
        table: dict[str, str] = {}
        for symbol, value in pairs:
            table.setdefault(symbol.upper(), value)
        symbols = sorted(table)
        lines = [f"{symbol}\t{table[symbol]}" for symbol in symbols]
        starts = array("I")
        position = 0
        for line in lines:
            starts.append(position)
            position += len(line) + 1
        self._text, self._starts, self._size = "\n".join(lines), starts, len(symbols)

    def __len__(self) -> int:
        return self._size

    def get(self, symbol: str) -> str | None:
        """The id of ``symbol`` (any case), or None."""
        wanted = symbol.upper()
        low, high = 0, self._size
        while low < high:
            middle = (low + high) // 2
            key, value = self._line(middle)
            if key == wanted:
                return value
            if key < wanted:
                low = middle + 1
            else:
                high = middle
        return None

    def _line(self, index: int) -> tuple[str, str]:
        start = self._starts[index]
        end = self._starts[index + 1] - 1 if index + 1 < self._size else len(self._text)
        key, _, value = self._text[start:end].partition("\t")
        return key, value
