"""Websocket providers on 127.0.0.1 for tests: a scriptable one, and one speaking Coinbase's ticker channel.

The framework's stream thread connects to them as it would to the provider, so subscriptions, reconnects and
back-off are tested end to end.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from app.devkit.fake_http import free_port


class FakeWebSocketProvider:
    """A websocket server on 127.0.0.1 for a streaming adapter's tests, scripted by the test.

    ``on_message(fn)``: ``fn(message)`` gets each decoded client message and returns the messages to send back
    (JSON-able objects or text); ``push(message)`` sends one to every open connection; ``drop()`` cuts every
    connection as a network failure would; ``stop()``/``start()`` restart the server on the same port.
    ``received`` lists every client message, ``opened`` counts connections.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.received: list[Any] = []
        self.opened = 0
        self._answer: Callable[[Any], list[Any]] = lambda message: []
        #: Open connections, each with the stream ids it is subscribed to (for subclasses that track them).
        self._subscribed: dict[Any, set[str]] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def on_message(self, answer: Callable[[Any], list[Any]]) -> None:
        self._answer = answer

    def start(self) -> Self:
        from websockets.sync.server import serve

        self._server = serve(self._handle, "127.0.0.1", self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._server = None
        with self._lock:
            self._subscribed.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def push(self, message: Any) -> None:
        with self._lock:
            targets = list(self._subscribed)
        for ws in targets:
            self._send(ws, message)

    def send_raw(self, text: str) -> None:
        """Send text as it is (e.g. a frame that is not JSON) to every open connection."""
        self.push(text)

    def drop(self) -> None:
        """Cut every connection without a closing handshake, as a network failure would."""
        with self._lock:
            targets = list(self._subscribed)
        for ws in targets:
            ws.socket.shutdown(socket.SHUT_RDWR)

    def answer(self, ws: Any, message: Any) -> None:
        for reply in self._answer(message) or []:
            self._send(ws, reply)

    def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            self.opened += 1
            self._subscribed[ws] = set()
        try:
            for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = raw
                with self._lock:
                    self.received.append(message)
                self.answer(ws, message)
        except (ConnectionClosed, OSError):
            pass  # a cut connection: it just ends
        finally:
            with self._lock:
                self._subscribed.pop(ws, None)

    @staticmethod
    def _send(ws: Any, message: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed, OSError):  # the connection went away meanwhile
            ws.send(message if isinstance(message, str | bytes) else json.dumps(message))


class FakeTickerStream(FakeWebSocketProvider):
    """Speaks Coinbase Exchange's ``ticker`` channel.

    A subscribe is acknowledged and answered with each product's current price from ``prices`` (an unknown
    product gets an ``error`` message); ``tick`` sends a new price to every connection subscribed to it.
    ``muted`` products get no tickers.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.prices: dict[str, str] = {"ETH-USD": "3021.50", "BTC-USD": "97000.00", "LINK-USD": "14.25"}
        self.muted: set[str] = set()

    def subscribed(self) -> list[set[str]]:
        """The products each open connection is subscribed to."""
        with self._lock:
            return [set(products) for products in self._subscribed.values()]

    def messages(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.received if isinstance(m, dict) and m.get("type") == kind]

    def tick(self, product: str, price: str) -> None:
        """A new price, sent to every connection subscribed to ``product``."""
        self.prices[product] = price
        with self._lock:
            targets = [ws for ws, products in self._subscribed.items() if product in products]
        for ws in targets:
            self._send_ticker(ws, product)

    def answer(self, ws: Any, message: Any) -> None:
        if not isinstance(message, dict):
            return
        products = list(message.get("product_ids", []))
        if message.get("type") == "subscribe":
            with self._lock:
                self._subscribed[ws] |= set(products)
            self._send(ws, {"type": "subscriptions", "channels": [{"name": "ticker", "product_ids": products}]})
            for product in products:
                self._send_ticker(ws, product)
        elif message.get("type") == "unsubscribe":
            with self._lock:
                self._subscribed[ws] -= set(products)

    def _send_ticker(self, ws: Any, product: str) -> None:
        if product in self.muted:
            return
        price = self.prices.get(product)
        if price is None:
            message = {"type": "error", "message": "Failed to subscribe", "reason": f"{product} is not a valid product"}
        else:
            message = {"type": "ticker", "sequence": 1, "product_id": product, "price": price,
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"}
        self._send(ws, message)
