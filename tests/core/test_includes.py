"""Inverse pairs: which pair is fetched for which pair asked, from an adapter's table and a request's own."""

from __future__ import annotations

import pytest

from app.core.answers import inverted
from app.core.entries import CacheEntry
from app.core.errors import AdapterInputError
from app.core.includes import Include, IncludesTable

TABLE = IncludesTable.parse([{"from": "JPY", "to": "USD", "includes": [
    {"from": "USD", "to": "JPY", "inverse": True}, {"from": "EUR", "to": "JPY"}]}], "test")


def test_the_table_maps_the_pair_asked_to_the_pair_fetched_whatever_the_case():
    assert TABLE.lookup("jpy", "Usd") == Include("USD", "JPY", True), "first detail used"
    assert TABLE.lookup("USD", "JPY") is None, "the pair the provider quotes is fetched as asked"


def test_a_requests_own_includes_come_first_and_a_symbol_replaces_the_quote():
    mine = [{"from": "JPY", "to": "USD", "includes": [{"from": "JPY", "to": "EUR"}]}]
    assert TABLE.lookup("JPY", "USD", mine) == Include("JPY", "EUR", False)
    assert TABLE.lookup("ETH", "USD", ["usdt"]) == Include("ETH", "USDT", False)
    assert TABLE.lookup("JPY", "USD", ["usdt"]) == Include("USD", "JPY", True), "the table beats a plain symbol"


@pytest.mark.parametrize("doc", [{}, [{"from": "A"}], [{"from": "A", "to": "B", "includes": [{"to": "C"}]}],
                                 [{"from": "A", "to": "B", "includes": [{"from": "B", "to": "A", "inverse": 1}]}]])
def test_a_broken_table_is_refused_naming_the_entry(doc):
    with pytest.raises(ValueError, match=r"adapter includes\.json"):
        IncludesTable.parse(doc, "adapter includes.json")


def test_a_broken_request_includes_is_an_input_error():
    with pytest.raises(AdapterInputError, match=r"data\.includes\[1\]"):
        TABLE.lookup("JPY", "USD", ["USDT", {"from": "JPY"}])
    with pytest.raises(AdapterInputError, match=r"data\.includes: must be an array"):
        TABLE.lookup("JPY", "USD", {"from": "JPY"})


def test_an_answer_is_inverted_in_result_and_data_result_only():
    entry = CacheEntry(200, 5, '{"data":{"result":4.0,"x":1},"result":4.0,"statusCode":200,"timestamps":{"a":1}}')
    assert inverted(entry).body == '{"data":{"result":0.25,"x":1},"result":0.25,"statusCode":200,"timestamps":{"a":1}}'
    zero = inverted(CacheEntry(200, 5, '{"data":{"result":0},"result":0,"statusCode":200,"timestamps":{}}'))
    assert zero.status_code == 502 and "not a number other than 0" in zero.body
