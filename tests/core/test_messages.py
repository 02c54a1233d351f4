"""What messages and logs quote of someone else's input: short, typed, and never a secret from a URL."""

from __future__ import annotations

import pytest

from app.core.messages import json_type, redacted_url, short, snippet


@pytest.mark.parametrize(("url", "shown"), [
    ("https://api.example/v1/price?x_cg_pro_api_key=secret&ids=eth", "https://api.example/v1/price"),
    ("wss://user:token@stream.example:8443/ws#frag", "wss://stream.example:8443/ws"),
    ("http://[::1]:9000/resume?token=abc", "http://[::1]:9000/resume"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_a_url_is_shown_without_its_query_user_info_or_fragment(url, shown):
    assert redacted_url(url) == shown
    assert "secret" not in redacted_url(url) and "token" not in redacted_url(url)


def test_values_are_named_by_their_json_type_and_cut_short():
    assert [json_type(v) for v in ({}, [], "", True, 1, 1.5, None)] == [
        "object", "array", "string", "boolean", "integer", "number", "null"]
    assert short("x" * 100) == '"' + "x" * 59 + "…" and short({"a": 1}) == '{"a": 1}'


def test_a_snippet_is_one_quoted_line_of_at_most_200_characters():
    assert snippet(b"line one\nline two") == "'line one line two'"
    assert snippet(b"y" * 500) == repr("y" * 200) + "…"
