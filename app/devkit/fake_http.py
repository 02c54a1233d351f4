"""HTTP providers on 127.0.0.1 for tests: a scriptable provider that records every call, and Pyth's Hermes.

Real servers, not mocks: the adapter under test sends real requests through the framework's requester, so
timeouts, retries, size limits and batching are exercised as they run in production.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = 0.0  # time.time() when it arrived
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    #: Seconds between bytes of the body: a provider that trickles its answer.
    trickle_s: float = 0.0


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 that hands every request to ``_serve``; a context manager."""

    def _listen(self, port: int) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without this, Nagle's algorithm meets the client's
            # delayed ACK and every answer stalls ~40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                owner._serve(self)

            do_POST = do_PATCH = do_PUT = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

        self._server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeProvider(LoopbackServer):
    """A provider double on 127.0.0.1 that records every call (``calls``, ``count(path)``).

    Script it per path with ``on(path, answer)``: the answer is a ``Reply`` (status, body, headers, delay,
    trickle), a JSON-able body for a 200, or a function of the ``Call`` returning either. ``respond(fn)``
    answers every other path; ``delay_s`` slows every answer. Unscripted, it speaks CoinGecko's
    ``/simple/price`` (driven by ``prices[(coin_id, currency)]``) and ``/global``, and 404 elsewhere.
    """

    def __init__(self, port: int = 0) -> None:
        self.calls: list[Call] = []
        self.prices: dict[tuple[str, str], float] = {("ethereum", "usd"): 3021.5, ("bitcoin", "usd"): 97000.0,
                                                     ("chainlink", "usd"): 14.25, ("ethereum", "eur"): 2800.0}
        self.delay_s = 0.0
        self._responder: Callable[[Call], Reply] | None = None
        self._routes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._listen(port)

    def respond(self, responder: Callable[[Call], Reply] | None) -> None:
        self._responder = responder

    def on(self, path: str, answer: Reply | Callable[[Call], Any] | Any) -> None:
        """Answer calls to exactly ``path`` (the query string aside) with ``answer``."""
        self._routes[path] = answer

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls if path is None or c.path.endswith(path))

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        call = Call(handler.command, parts.path, dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in handler.headers.items()}, time.time(),
                    handler.rfile.read(length) if length else b"")
        with self._lock:
            self.calls.append(call)
        reply = self._reply(call)
        if reply.delay_s or self.delay_s:
            time.sleep(reply.delay_s or self.delay_s)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            headers = {"content-type": "application/json", **reply.headers}
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            if reply.trickle_s:
                for byte in body:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    time.sleep(reply.trickle_s)
            else:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout): nothing to answer

    def _reply(self, call: Call) -> Reply:
        if call.path in self._routes:
            answer = self._routes[call.path]
            answer = answer(call) if callable(answer) else answer
            return answer if isinstance(answer, Reply) else Reply(body=answer)
        return self._responder(call) if self._responder else self._coingecko(call)

    def _coingecko(self, call: Call) -> Reply:
        if call.path.endswith("/simple/price"):
            ids = call.query.get("ids", "").split(",")
            currencies = call.query.get("vs_currencies", "").split(",")
            answer: dict[str, dict[str, float]] = {}
            for coin in ids:
                for currency in currencies:
                    price = self.prices.get((coin, currency))
                    if price is None:
                        continue
                    entry = answer.setdefault(coin, {})
                    entry[currency] = price
                    if call.query.get("include_market_cap") == "true":
                        entry[f"{currency}_market_cap"] = price * 1e6
                    if call.query.get("include_24hr_vol") == "true":
                        entry[f"{currency}_24h_vol"] = price * 1e3
                    entry["last_updated_at"] = 1763699999
            return Reply(body=answer)
        if call.path.endswith("/global"):
            return Reply(body={"data": {"total_market_cap": {"usd": 3.2e12, "eur": 2.9e12},
                                        "market_cap_percentage": {"btc": 56.1, "eth": 11.9},
                                        "updated_at": 1763699999}})
        return Reply(404, {"error": "not found"})


class FakeHermes(LoopbackServer):
    """An HTTP server on 127.0.0.1 speaking Pyth Hermes: the SSE price stream and the latest-price call.

    ``prices`` maps a feed id (64 hex digits, no ``0x``) to an integer price with exponent -8. A stream request
    gets one event per feed at once, then an event whenever ``push`` changes a price, and a keep-alive comment
    every 0.2 s. ``streams`` lists the feed ids each stream request asked for; ``drop()`` ends every open stream.
    """

    def __init__(self, port: int = 0) -> None:
        self.prices: dict[str, int] = {}
        self.streams: list[list[str]] = []
        self._queues: list[Any] = []
        self._lock = threading.Lock()
        self._listen(port)

    def __exit__(self, *exc: object) -> None:
        self.drop()  # open streams would hold the server's shutdown
        super().__exit__(*exc)

    def push(self, feed: str, price: int) -> None:
        self.prices[feed] = price
        with self._lock:
            for ids, updates in self._queues:
                if feed in ids:
                    updates.put(feed)

    def drop(self) -> None:
        with self._lock:
            for _, updates in self._queues:
                updates.put(None)

    def _update(self, feeds: list[str]) -> dict[str, Any]:
        return {"binary": {"encoding": "hex", "data": []},
                "parsed": [{"id": f, "price": {"price": str(self.prices[f]), "conf": "1000", "expo": -8,
                                               "publish_time": int(time.time())}} for f in feeds if f in self.prices]}

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        import queue

        parts = urlsplit(handler.path)
        feeds = [v.removeprefix("0x").lower() for k, v in parse_qsl(parts.query) if k == "ids[]"]
        if parts.path == "/v2/updates/price/latest":
            body = json.dumps(self._update(feeds)).encode()
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("cache-control", "no-cache")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

        def send(text: str) -> None:
            data = text.encode()
            handler.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        updates: queue.Queue[str | None] = queue.Queue()
        entry = (set(feeds), updates)
        with self._lock:
            self.streams.append(feeds)
            self._queues.append(entry)
        try:
            send(f"data: {json.dumps(self._update(feeds))}\n\n")
            while True:
                try:
                    feed = updates.get(timeout=0.2)
                except queue.Empty:
                    send(": keep-alive\n\n")
                    continue
                if feed is None:
                    handler.wfile.write(b"0\r\n\r\n")
                    return
                send(f"data: {json.dumps(self._update([feed]))}\n\n")
        except OSError:
            return  # the client went away
        finally:
            with self._lock:
                self._queues.remove(entry)
            handler.close_connection = True
