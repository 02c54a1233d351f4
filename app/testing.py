"""Test kit: a scriptable fake provider on 127.0.0.1 and a real gunicorn running pyea.

Nothing is mocked: the fake provider is a real HTTP server that records every call, and ``GunicornProcess``
runs the same command an operator runs. Tests and benchmarks share these so they measure the same thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import requests

REPO = Path(__file__).resolve().parent.parent


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


class GunicornProcess:
    """``gunicorn`` run from the repository as an operator would, on a free loopback port.

    ``cwd`` is the directory gunicorn starts in (its ``gunicorn.conf.py``, if any, applies); the app must
    answer ``GET /health`` with 200 once it is ready.
    """

    def __init__(self, env: Mapping[str, str], args: Sequence[str] = ("app:create_app()",),
                 port: int | None = None, log_path: Path | None = None, cwd: Path = REPO,
                 tls_cert: Path | None = None) -> None:
        """``tls_cert``: the certificate gunicorn serves (its ``--certfile``); the URL is then https and
        trusts exactly that certificate."""
        self.cwd = cwd
        self.port = port or free_port()
        host = env.get("EA_HOST", "127.0.0.1").removeprefix("[").removesuffix("]")
        self.url = f"{'https' if tls_cert else 'http'}://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.verify: str | bool = str(tls_cert) if tls_cert else True
        self.metrics_port = int(env.get("METRICS_PORT") or free_port())
        self.env = {**os.environ, "EA_HOST": "127.0.0.1", "EA_PORT": str(self.port),
                    "METRICS_PORT": str(self.metrics_port), **env}
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> GunicornProcess:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *self.args], cwd=self.cwd, env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}: {self.log()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except requests.RequestException:
                pass  # not listening yet, or a worker still booting
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /health within {timeout_s} s: {self.log()}")

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> GunicornProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


def node_request(client: Any, data: Mapping[str, Any] | None = None, endpoint: str | None = None,
                 path: str = "/", **body: Any) -> Any:
    """POST ``{"id": "1", "data": data}`` the way a Chainlink bridge task does, through a Flask test client
    (``client.post``) or a ``requests.Session``-like object with a base URL given as ``path``."""
    payload: dict[str, Any] = {"id": "1", "data": dict(data) if data is not None else {"base": "ETH",
                                                                                          "quote": "USD"}, **body}
    if endpoint is not None:
        payload["endpoint"] = endpoint
    return client.post(path, json=payload)


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.01) -> Any:
    """Poll ``condition`` until it returns something truthy (returned), failing with ``what`` after
    ``timeout_s``. Tests wait for behaviour this way instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(interval_s)
    return result


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
