"""The transport contract's own behaviour: how feeds are cut into calls, and how an event stream is read."""

from __future__ import annotations

from app.core.transports import Transport
from app.core.transports.http import HttpTransport
from app.core.transports.sse import EventReader
from app.core.transports.stream import StreamingTransport


def test_feeds_are_cut_into_calls_of_at_most_max_batch_size_in_order():
    class Batching(HttpTransport):
        max_batch_size = 3

    assert Batching().batches(list(range(7))) == [[0, 1, 2], [3, 4, 5], [6]]
    assert Transport().batches([1, 2]) == [[1], [2]], "a transport that declares nothing is asked one feed a call"
    assert StreamingTransport(Batching()).batches([1, 2, 3, 4]) == [[1, 2, 3], [4]], "a stream polls as its fallback"
    assert StreamingTransport().batches([1, 2]) == [[1], [2]]


def test_events_are_read_as_the_server_sent_events_format_defines_them():
    reader = EventReader()
    lines = [": keep-alive", "event: price_update", "data: {\"a\":", "data:1}", "id: 7", "", "", "data: plain", ""]
    events = [event for line in lines if (event := reader.line(line)) is not None]
    assert events == [("price_update", '{"a":\n1}'), ("message", "plain")]
