"""Out-of-process adapters: each ``<NAME>_CMD`` runs as its own process that the host starts and keeps alive.

Chainlink's node runs its LOOP plugins this way; pyea keeps the model and fixes what hurts operators there:
workers bind loopback only, a dead *or hung* worker is restarted with capped exponential back-off instead of a
fixed retry loop, and its port never changes, so the host's proxy and Prometheus keep finding it.

The supervisor is a small process of its own (``python -m app supervise``) started by gunicorn's master. It
cannot be a thread of the master: gunicorn reaps every child of the master, and releases before 27 stop the
whole server when any child exits with gunicorn's boot-failure codes, which an adapter's own gunicorn uses.
This module stays light (no Flask, no requests) because the master imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from app.core.adapter_processes import PORTS_ENV, PREFIXED_ONLY_ENV, command_path, decode_ports, parse_command
from app.core.retry_timing import capped_backoff_s
from app.core.setting_specs import secret_values
from app.core.settings import Settings

log = logging.getLogger("pyea.supervisor")

STATE_FILE = "pyea-adapters.json"
STOP_TIMEOUT_S = 10.0


def out_of_process_names(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Adapters with ``<NAME>_CMD`` set, read without importing them (the master stays light)."""
    names = [n.lower() for n in settings.ADAPTERS] or ["coingecko"]
    return [n for n in names if environ.get(f"{n.upper()}_CMD", "").strip()]


def assign_ports(names: list[str]) -> dict[str, int]:
    """Free loopback ports, one per adapter, all held open together so no two are the same."""
    sockets = []
    try:
        for _ in names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return {name: sock.getsockname()[1] for name, sock in zip(names, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class WorkerPlan:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str]


def plan_workers(settings: Settings, environ: Mapping[str, str], ports: Mapping[str, int]) -> list[WorkerPlan]:
    """How each out-of-process adapter is started: the host's environment, narrowed to that one adapter.

    Works from the environment alone, without importing any adapter, so the supervisor stays small."""
    names = [n.lower() for n in settings.ADAPTERS] or ["coingecko"]
    # EA_ALLOWED_IPS is the host's: its workers are reached by the host alone, over loopback.
    host_only = {f"{n.upper()}_CMD" for n in names} | {PORTS_ENV, "PROMETHEUS_MULTIPROC_DIR", "EA_ALLOWED_IPS"}
    plans = []
    for name in out_of_process_names(settings, environ):
        env = {k: v for k, v in environ.items() if k not in host_only}
        if name != names[0]:
            # In the host this adapter reads only <NAME>_X; in its own process it is the default adapter, and
            # plain X (which belongs to the host's default adapter) must not reach it.
            env[PREFIXED_ONLY_ENV] = "true"
        env.update({
            "ADAPTERS": name,
            "EA_HOST": "127.0.0.1",  # reached through the host only
            "EA_PORT": str(ports[name]),
            "BASE_URL": "/",
            "METRICS_USE_BASE_URL": "true",  # one port per worker: requests, /health and /metrics
            # Its own directory: the background lease, subscriptions and rate-limit windows are its own.
            "CACHE_DIR": os.path.join(settings.CACHE_DIR, "adapters", name),
            "PATH": command_path(),
        })
        plans.append(WorkerPlan(name, parse_command(environ[f"{name.upper()}_CMD"]), ports[name], env))
    return plans


@dataclass
class WorkerStatus:
    """What ``/status`` shows about a worker; written to a file the host's processes read."""

    name: str
    port: int
    state: str = "starting"  # starting | up | down
    pid: int | None = None
    restarts: int = 0
    lastExit: str | None = None
    since: float = 0.0


class Supervisor:
    """Keeps every planned worker running: one thread per worker starts it, watches it and restarts it."""

    def __init__(self, plans: list[WorkerPlan], settings: Settings, state_dir: str) -> None:
        self.plans = plans
        self.settings = settings
        self.state_path = os.path.join(state_dir, STATE_FILE)
        os.makedirs(state_dir, exist_ok=True)
        self.status = {p.name: WorkerStatus(p.name, p.port, since=time.time()) for p in plans}
        self._procs: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._keep_running, args=(plan,), name=f"supervise-{plan.name}",
                                          daemon=True) for plan in plans]

    def start(self) -> None:
        self._stop_orphans()
        self._write_state()
        for thread in self._threads:
            thread.start()

    def _stop_orphans(self) -> None:
        """A supervisor killed outright (the OOM killer) leaves its workers running on their ports, where the
        next supervisor's workers could never bind. Its state file names them: stop those that are still ours
        (same adapter and port in their environment, so a reused pid is never touched)."""
        for name, previous in read_state(os.path.dirname(self.state_path)).items():
            pid, plan = previous.get("pid"), next((p for p in self.plans if p.name == name), None)
            if not pid or plan is None or not _runs(pid, {"ADAPTERS": name, "EA_PORT": str(plan.port)}):
                continue
            log.warning("adapter %s: stopping pid %s, left running by a previous supervisor", name, pid)
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while process_running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if process_running(pid):
                _signal_group(pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for thread in self._threads:
            thread.join(timeout=2)
        with contextlib.suppress(OSError):
            os.remove(self.state_path)

    def _keep_running(self, plan: WorkerPlan) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            healthy = self._run_once(plan)
            if self._stop.is_set():
                return
            stable = healthy and time.monotonic() - started >= self.settings.PLUGIN_RESTART_BACKOFF_MAX_MS / 1000
            failures = 1 if stable else failures + 1
            delay = self.backoff_s(failures)
            log.warning("adapter %s: restarting in %.1f s (%s)", plan.name, delay, self.status[plan.name].lastExit)
            self._stop.wait(delay)

    def backoff_s(self, failures: int) -> float:
        return capped_backoff_s(failures, self.settings.PLUGIN_RESTART_BACKOFF_MS,
                                self.settings.PLUGIN_RESTART_BACKOFF_MAX_MS, jitter=0.1)

    def _run_once(self, plan: WorkerPlan) -> bool:
        """Start the worker and watch it until it dies or stops answering; True if it ever became healthy."""
        status = self.status[plan.name]
        try:
            proc = subprocess.Popen(plan.argv, env=plan.env, start_new_session=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            self._set(status, state="down", pid=None, lastExit=f"could not start: {exc}")
            return False
        with self._lock:
            self._procs[plan.name] = proc
        self._set(status, state="starting", pid=proc.pid)
        log.info("adapter %s: started pid %s on 127.0.0.1:%s", plan.name, proc.pid, plan.port)
        reason, healthy = self._watch(plan, proc)
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # the worker's own children, if it left any behind
        with self._lock:
            self._procs.pop(plan.name, None)
        if not self._stop.is_set():
            self._set(status, state="down", pid=None, restarts=status.restarts + 1, lastExit=reason)
            log.error("adapter %s: %s", plan.name, reason)
        return healthy

    def _watch(self, plan: WorkerPlan, proc: subprocess.Popen) -> tuple[str, bool]:
        settings = self.settings
        start_deadline = time.monotonic() + settings.PLUGIN_START_TIMEOUT_MS / 1000
        interval = settings.PLUGIN_HEALTH_INTERVAL_MS / 1000
        healthy, misses, next_check = False, 0, time.monotonic()
        while not self._stop.wait(0.05):
            code = proc.poll()
            if code is not None:
                return _describe_exit(code), healthy
            now = time.monotonic()
            if now < next_check:
                continue
            ok = _answers(plan.port, timeout=min(1.0, interval))
            if not healthy:
                if ok:
                    healthy = True
                    self._set(self.status[plan.name], state="up")
                    log.info("adapter %s: healthy", plan.name)
                elif now > start_deadline:
                    return f"not healthy {settings.PLUGIN_START_TIMEOUT_MS} ms after starting", False
                next_check = now + (interval if healthy else 0.1)
                continue
            misses = 0 if ok else misses + 1
            if misses >= settings.PLUGIN_HEALTH_FAILURES:
                return f"did not answer /health {misses} times in a row", True
            self._set(self.status[plan.name], state="up" if ok else "unhealthy")
            next_check = now + interval
        return "stopped", healthy

    def _set(self, status: WorkerStatus, **changes: object) -> None:
        changes = {k: v for k, v in changes.items() if getattr(status, k) != v}
        if not changes:
            return
        if "state" in changes:
            changes["since"] = time.time()
        for key, value in changes.items():
            setattr(status, key, value)
        self._write_state()

    def _write_state(self) -> None:
        with self._lock:
            payload = json.dumps({name: asdict(s) for name, s in self.status.items()})
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.state_path), prefix=".adapters-")
            with os.fdopen(fd, "w") as out:
                out.write(payload)
            os.replace(tmp, self.state_path)


def read_state(state_dir: str) -> dict[str, dict]:
    try:
        with open(os.path.join(state_dir, STATE_FILE)) as src:
            return json.load(src)
    except (OSError, ValueError):
        return {}


def _answers(port: int, timeout: float) -> bool:
    """``GET /health`` answered 200? A bare socket: urllib would cost this small process 9 MiB of imports (ssl,
    email) to read one status line."""
    head = b""  # HTTP/1.0: the worker closes the connection after its answer
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            while len(head) < 65536 and (chunk := sock.recv(4096)):  # to the end: a reset upsets the worker
                head += chunk
    except OSError:
        return False
    return head.split(b" ", 2)[1:2] == [b"200"]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _runs(pid: int, expected: Mapping[str, str]) -> bool:
    """Whether ``pid`` is alive with these variables in its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as src:
            environ = dict(item.split(b"=", 1) for item in src.read().split(b"\0") if b"=" in item)
    except OSError:
        return False
    return all(environ.get(k.encode()) == v.encode() for k, v in expected.items())


def process_running(pid: int) -> bool:
    """Running, not merely a zombie waiting for whoever inherited it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as src:
            return src.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal_group(pid: int, sig: int) -> None:
    """A worker is a session leader (its gunicorn forks workers): signal all of them."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def run_supervisor() -> int:
    """``python -m app supervise``: runs until told to stop or until the process that started it is gone."""
    from app.observe.logs import configure_logging

    settings = Settings.parse()[0]  # validated by the master before it started this process
    configure_logging(settings, secret_values(os.environ))
    plans = plan_workers(settings, os.environ, decode_ports(os.environ.get(PORTS_ENV, "")))
    supervisor = Supervisor(plans, settings, settings.CACHE_DIR)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    parent = os.getppid()
    supervisor.start()
    while not stopping.wait(0.5):
        if os.getppid() != parent:
            log.warning("the host process is gone; stopping its adapters")
            break
    supervisor.stop()
    return 0


class SupervisorProcess:
    """The master's handle on the supervisor: started once workers can be served, restarted if it ever dies,
    stopped with the master."""

    def __init__(self, cwd: str) -> None:
        self.cwd = cwd
        self._proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_running, name="pyea-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _keep_running(self) -> None:
        while not self._stop.is_set():
            self._proc = subprocess.Popen([sys.executable, "-m", "app", "supervise"], cwd=self.cwd,
                                          stdin=subprocess.DEVNULL)
            self._proc.wait()  # gunicorn may reap it first; Popen then reports 0, which is enough here
            if not self._stop.wait(1.0):
                log.error("the adapter supervisor exited; starting it again")

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
