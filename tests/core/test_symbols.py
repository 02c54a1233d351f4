"""The compact symbol table answers as the dict it replaces: any case, first id wins, misses are None."""

from __future__ import annotations

import json
import random

from app.core.symbols import SymbolTable
from app.devkit.testing import REPO


def test_lookups_are_case_insensitive_and_the_first_id_wins():
    table = SymbolTable([("eth", "ethereum"), ("ETH", "ethereum-wormhole"), ("$ADS", "alkimi"), ("42", "42-coin")])
    assert len(table) == 3
    assert [table.get(s) for s in ("ETH", "Eth", "$ads", "42", "BTC", "", "ETHX")] == [
        "ethereum", "ethereum", "alkimi", "42-coin", None, None, None]
    assert SymbolTable().get("ETH") is None


def test_the_shipped_coingecko_table_answers_every_symbol_as_its_file_says():
    mapping = json.loads((REPO / "adapters" / "coingecko" / "overrides.json").read_text("utf-8"))
    table = SymbolTable(mapping.items())
    assert len(table) == len(mapping)
    for symbol in random.Random(7).sample(sorted(mapping), 500):
        assert table.get(symbol) == mapping[symbol] and table.get(symbol.lower()) == mapping[symbol]
