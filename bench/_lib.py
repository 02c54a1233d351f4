"""What the benchmarks share: load generators (wrk, or Python clients), CPU and memory readings of a process
tree, pyea and its baselines under gunicorn, machine information, and the checks every measured run must pass."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import queue
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import GunicornProcess

BENCH = Path(__file__).resolve().parent


REPO = BENCH.parent


HOST = "127.0.0.1"


REQUEST_BODY = b'{"id":"1","data":{"base":"ETH","quote":"USD"}}'


REQUEST_HEADERS = {"content-type": "application/json"}


RATIO_TARGET = 0.7


RSS_TARGET_MIB = 120


MATRIX_WORKERS = (1, 2, 3)


MATRIX_THREADS = (4, 8, 16)


# The warmed entry must outlive the whole run (the default 90 s would not) so every measured request is a hit;
# the hit path itself does not depend on the TTL.
CACHE_MAX_AGE_MS = "3600000"


# gunicorn settings that change how requests are served; bare_app gets pyea's resolved values for all of them.
COMPARED_SETTINGS = ("worker_class", "workers", "threads", "keepalive", "timeout", "graceful_timeout",
                     "backlog", "worker_connections", "preload_app")


REQUEST_TIMEOUT_S = 10


START_TIMEOUT_S = 30.0


class BenchError(RuntimeError):
    """A check failed or a server misbehaved: the figures of this run must not be used."""


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    non200: int
    errors: int
    # CPU over the warm-up and the run, in cores: where the machine's time went, so a slow round can be told
    # apart from a noisy neighbour (other_cores: busy time of processes this run did not start; steal: the VM's).
    server_cores: float = 0.0
    loadgen_cores: float = 0.0
    other_cores: float = 0.0
    steal_cores: float = 0.0
    # Open connections per worker in the middle of the run. gthread keeps a keep-alive connection on the worker
    # that accepted it, so a split like [0, 16] leaves one worker (one core) to serve all the load.
    connections_per_worker: list[int] = field(default_factory=list)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest rank, as wrk computes it, so both load generators mean the same by p99."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return 0.0


def system_cpu_s() -> tuple[float, float]:
    """Busy and stolen CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


class CpuMeter:
    """Splits the machine's CPU time over one measurement between the target, the load and everyone else."""

    def __init__(self, target_master: int, other_masters: Sequence[int]) -> None:
        self.target = target_master
        self.others = list(other_masters)

    def _ours(self) -> tuple[float, float, float]:
        target = sum(process_cpu_s(p) for p in process_tree(self.target))
        idle_servers = sum(process_cpu_s(p) for m in self.others for p in process_tree(m))
        me = os.times()  # this process: the fake provider and the bookkeeping
        return target, idle_servers + me.user + me.system, resource_children_s()

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.sys0 = system_cpu_s()
        self.ours0 = self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(1e-9, time.monotonic() - self.t0)
        busy1, steal1 = system_cpu_s()
        target1, rest1, load1 = self._ours()
        target0, rest0, load0 = self.ours0
        self.server_cores = (target1 - target0) / elapsed
        self.loadgen_cores = (load1 - load0) / elapsed
        ours = (target1 - target0) + (rest1 - rest0) + (load1 - load0)
        self.other_cores = max(0.0, (busy1 - self.sys0[0] - ours) / elapsed)
        self.steal_cores = (steal1 - self.sys0[1]) / elapsed

    def annotate(self, result: LoadResult) -> LoadResult:
        result.server_cores, result.loadgen_cores = self.server_cores, self.loadgen_cores
        result.other_cores, result.steal_cores = self.other_cores, self.steal_cores
        return result


def resource_children_s() -> float:
    """CPU of finished children (wrk runs, Python load processes); gunicorn is read from /proc instead."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lua_string(text: str) -> str:
    """A Lua literal for any text, so the body can never break out of the script."""
    escaped = "".join(ch if ch.isprintable() and ch not in '\\"' else f"\\{ord(ch):03d}" for ch in text)
    return f'"{escaped}"'


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
""" + """\
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) not_ok = 0 end
-- wrk itself counts only status >= 400; the check is "every response is exactly 200".
function response(status, headers, body) if status ~= 200 then not_ok = not_ok + 1 end end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("not_ok") end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {{"requests":%d,"duration_us":%d,"non200":%d,"errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}}\\n', summary.requests, summary.duration, n,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50.0), latency:percentile(99.0)))
end
"""


# The same, but each request takes the next body of a list (distinct feeds), round robin per wrk thread.
WRK_ROTATING_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{ {bodies} }}
local next_body = 0
function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
""" + WRK_SCRIPT.split('"application/json"\n', 1)[1]


def run_wrk(url: str, script: Path, connections: int, duration_s: int, threads: int) -> LoadResult:
    """One wrk run; its summary comes out of the Lua ``done`` hook as JSON rather than parsed prose."""
    cmd = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration_s}s",
           f"--timeout={REQUEST_TIMEOUT_S}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    match = re.search(r"^WRK_RESULT (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout[-1000:]} {out.stderr[-1000:]}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    return LoadResult(requests=raw["requests"], duration_s=seconds, rps=raw["requests"] / seconds,
                      p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000, non200=raw["non200"],
                      errors=raw["errors"])


def _client_thread(port: int, window: tuple[float, float, float], sink: list[Any], bodies: Sequence[bytes],
                   ) -> None:
    """One keep-alive connection; only requests completed inside the measured window count."""
    start_at, measure_from, end_at = window
    sent = 0
    latencies: list[float] = []
    non200 = errors = 0
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    time.sleep(max(0.0, start_at - time.time()))
    while True:
        began = time.time()
        if began >= end_at:
            break
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/", bodies[sent % len(bodies)], REQUEST_HEADERS)
            sent += 1
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            if began >= measure_from:
                errors += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
            continue
        elapsed = time.perf_counter() - t0
        if measure_from <= time.time() <= end_at:
            latencies.append(elapsed)
            non200 += status != 200
    conn.close()
    sink.append((latencies, non200, errors))


def _client_process(port: int, connections: int, warmup_s: float, duration_s: float, ready: Any, go: Any,
                    start_at: Any, results: Any, bodies: Sequence[bytes]) -> None:
    """Entry point of one load process (spawned, so it shares nothing with the servers' parent)."""
    ready.put(os.getpid())
    go.wait(START_TIMEOUT_S)
    window = (start_at.value, start_at.value + warmup_s, start_at.value + warmup_s + duration_s)
    sink: list[Any] = []
    threads = [threading.Thread(target=_client_thread, args=(port, window, sink, bodies), daemon=True)
               for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(warmup_s + duration_s + REQUEST_TIMEOUT_S + 5)
    results.put(([lat for lats, _, _ in sink for lat in lats], sum(s[1] for s in sink), sum(s[2] for s in sink)))


def run_python_load(url: str, connections: int, warmup_s: int, duration_s: int,
                    bodies: Sequence[bytes] = (REQUEST_BODY,)) -> LoadResult:
    """Fallback without wrk: processes (one per core) of keep-alive threads, because one process is GIL-bound.

    It spends several times wrk's CPU per request, on the same cores as the servers, so its absolute figures
    are not comparable with wrk's; the ratio stays fair because both targets get the same generator.
    """
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    ctx = multiprocessing.get_context("spawn")
    n_procs = max(1, min(connections, os.cpu_count() or 1))
    shares = [connections // n_procs + (i < connections % n_procs) for i in range(n_procs)]
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_client_process, args=(port, share, warmup_s, duration_s, ready, go, start_at,
                                                       results, list(bodies)), daemon=True) for share in shares]
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=START_TIMEOUT_S)
        start_at.value = time.time() + 0.2
        go.set()
        collected = [results.get(timeout=warmup_s + duration_s + REQUEST_TIMEOUT_S + 30) for _ in procs]
    except queue.Empty:
        raise BenchError("a Python load process did not start or report in time") from None
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    latencies = sorted(lat for lats, _, _ in collected for lat in lats)
    return LoadResult(requests=len(latencies), duration_s=float(duration_s), rps=len(latencies) / duration_s,
                      p50_ms=percentile(latencies, 50) * 1000, p99_ms=percentile(latencies, 99) * 1000,
                      non200=sum(c[1] for c in collected), errors=sum(c[2] for c in collected))


class LoadGenerator:
    """Warm-up then measured run, the same way for every target."""

    def __init__(self, use_wrk: bool, workdir: Path, wrk_threads: int) -> None:
        self.use_wrk = use_wrk
        self.wrk_threads = wrk_threads
        self.script = workdir / "post.lua"
        self.script.write_text(WRK_SCRIPT.format(body=lua_string(REQUEST_BODY.decode())))

    @property
    def name(self) -> str:
        if self.use_wrk:
            return f"wrk ({wrk_version()}, {self.wrk_threads} thread{'s' if self.wrk_threads > 1 else ''})"
        return "python (http.client keep-alive, one process per core)"

    def rotating(self, bodies: Sequence[bytes]) -> Path:
        """A wrk script sending ``bodies`` in turn (written once per list)."""
        script = self.script.with_name(f"rotating-{len(bodies)}-{abs(hash(tuple(bodies)))}.lua")
        if not script.exists():
            script.write_text(WRK_ROTATING_SCRIPT.format(bodies=", ".join(lua_string(b.decode()) for b in bodies)))
        return script

    def measure(self, url: str, master: int, connections: int, warmup_s: int, duration_s: int,
                bodies: Sequence[bytes] = (REQUEST_BODY,)) -> LoadResult:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        split: list[int] = []
        script = self.script if list(bodies) == [REQUEST_BODY] else self.rotating(bodies)

        def probe() -> None:
            split.extend(connections_per_worker(master, port))

        if self.use_wrk:
            if warmup_s > 0:
                run_wrk(url, script, connections, warmup_s, self.wrk_threads)
            timer = threading.Timer(duration_s / 2, probe)
            timer.start()
            result = run_wrk(url, script, connections, duration_s, self.wrk_threads)
        else:
            # The Python generator starts measuring after spawning its processes and its own warm-up.
            timer = threading.Timer(1.0 + warmup_s + duration_s / 2, probe)
            timer.start()
            result = run_python_load(url, connections, warmup_s, duration_s, bodies)
        timer.cancel()
        timer.join()
        result.connections_per_worker = split
        return result


def post(url: str) -> tuple[int, bytes]:
    """One request outside the load, on its own connection."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("POST", "/", REQUEST_BODY, REQUEST_HEADERS)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def gunicorn_settings(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> dict[str, str]:
    """gunicorn's own view of its resolved settings, so "same settings" is checked rather than assumed."""
    out = subprocess.run([sys.executable, "-m", "gunicorn", "--print-config", *args], cwd=cwd, env=dict(env),
                         capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise BenchError(f"gunicorn --print-config failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")
    return dict(re.findall(r"^(\w+)\s+= (.*)$", out.stdout, re.MULTILINE))


def bare_args(pyea: Mapping[str, str], port: int) -> list[str]:
    """Command line giving bare_app the settings pyea's gunicorn.conf.py resolved to, and pyea's fair worker its
    connection table (``baseline_conf.py``)."""
    args = ["-c", str(BENCH / "baseline_conf.py"), "-k", pyea["worker_class"], "-w", pyea["workers"],
            "--threads", pyea["threads"], "--keep-alive", pyea["keepalive"], "--timeout", pyea["timeout"],
            "--graceful-timeout", pyea["graceful_timeout"], "--backlog", pyea["backlog"],
            "--worker-connections", pyea["worker_connections"], "-b", f"{HOST}:{port}"]
    if pyea.get("preload_app") == "True":
        args.append("--preload")
    if pyea.get("control_socket_disable") == "True":
        args.append("--no-control-socket")
    return [*args, "bench.bare_app:create_app()"]


def pyea_env(provider_url: str, cache_dir: Path, workers: int, threads: int) -> dict[str, str]:
    return {"API_ENDPOINT": provider_url, "CACHE_DIR": str(cache_dir), "EA_WORKERS": str(workers),
            "EA_THREADS": str(threads), "LOG_LEVEL": "warning", "CACHE_MAX_AGE": CACHE_MAX_AGE_MS}


def pyea_server(provider: FakeProvider, workdir: Path, name: str, workers: int, threads: int) -> GunicornProcess:
    """pyea as an operator runs it (the repository's gunicorn.conf.py), with a fresh cache; not started yet, so
    the caller holds it (and stops it) even if the start is interrupted."""
    cache_dir = workdir / f"cache-{name}"
    cache_dir.mkdir()
    return GunicornProcess(pyea_env(provider.url, cache_dir, workers, threads), log_path=workdir / f"{name}.log")


def warm(server: GunicornProcess, provider: FakeProvider) -> bytes:
    """Fill the cache with the one feed measured, and prove the next request is a hit that calls nobody."""
    before = provider.count()
    status, body = post(server.url)
    if status != 200:
        raise BenchError(f"warm request answered HTTP {status}: {body[:300]!r}")
    status, again = post(server.url)
    meta = json.loads(again).get("meta", {})
    if status != 200 or meta.get("cacheHit") is not True or provider.count() != before + 1:
        raise BenchError(f"second request was not a cache hit (HTTP {status}, meta {meta}, "
                         f"{provider.count() - before} provider calls)")
    return body


def process_tree(master: int) -> list[int]:
    """The master and its direct children (gunicorn's workers), found by parent pid in /proc."""
    pids = [master]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # The command name may hold spaces or parentheses; fields after the last ")" are fixed.
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


def _status_field(pid: int, name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


@dataclass
class Memory:
    processes: int
    rss_mib: float  # what the 120 MiB target is about; counts pages shared by master and workers in each
    pss_mib: float  # shared pages divided among sharers: closer to what the VM actually spends
    rss_master_mib: float
    rss_workers_mib: list[float]
    threads_per_worker: list[int]


def memory_of(master: int) -> Memory:
    pids = process_tree(master)
    rss = [_status_field(p, "VmRSS") / 1024 for p in pids]
    return Memory(processes=len(pids), rss_mib=sum(rss), pss_mib=sum(_pss_kib(p) for p in pids) / 1024,
                  rss_master_mib=rss[0], rss_workers_mib=[round(r, 1) for r in rss[1:]],
                  threads_per_worker=[_status_field(p, "Threads") for p in pids[1:]])


def established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local end is ``port`` (the server side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    return inodes


def connections_per_worker(master: int, port: int) -> list[int]:
    inodes = established_inodes(port)
    counts = []
    for pid in process_tree(master)[1:]:
        count = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    count += link.startswith("socket:[") and link[8:-1] in inodes
        counts.append(count)
    return sorted(counts)


def wrk_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
        match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        if match:
            return match.group(1)
    return "unknown"


def code_version() -> str:
    """Which pyea was measured: figures are only comparable with the code they came from."""
    try:
        git = ["git", "-C", str(REPO)]
        sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "app", "adapters", "schemas",
                                "gunicorn.conf.py"], capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{sha} + uncommitted changes" if dirty else sha


def machine_info(loadgen: LoadGenerator) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"pyea": code_version(), "cpu": model, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "gunicorn": version("gunicorn"), "flask": version("flask"),
            "werkzeug": version("werkzeug"), "diskcache": version("diskcache"),
            "wrk_used": loadgen.use_wrk, "load_generator": loadgen.name,
            "loadavg_at_start": " ".join(Path("/proc/loadavg").read_text().split()[:3])}


def print_machine(info: Mapping[str, Any]) -> None:
    print("machine:")
    for key, value in info.items():
        print(f"  {key:17} {value}")
    print(flush=True)


SPLIT_KINDS = ("balanced", "skewed", "pinned", "unknown")


def split_kind(result: LoadResult) -> str:
    """How the run's connections sat on the workers, which decides how many cores could serve them.

    pinned: all on one of several workers (the run measured one worker, whatever was configured); balanced:
    every worker held at least half its fair share; skewed: in between.
    """
    split = result.connections_per_worker
    total = sum(split)
    if not total:
        return "unknown"
    if len(split) > 1 and max(split) == total:
        return "pinned"
    return "balanced" if min(split) * len(split) * 2 >= total else "skewed"


def check_load(label: str, result: LoadResult) -> None:
    if result.non200 or result.errors or not result.requests:
        raise BenchError(f"{label}: {result.non200} non-200 responses, {result.errors} socket errors, "
                         f"{result.requests} requests")


def fmt(result: LoadResult) -> str:
    return (f"{result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
            f"cores: server {result.server_cores:.2f} load {result.loadgen_cores:.2f} "
            f"other {result.other_cores:.2f} steal {result.steal_cores:.2f}  "
            f"conns/worker {result.connections_per_worker}")


def summarise(results: Sequence[LoadResult]) -> dict[str, float]:
    """Medians; ``cpu_us`` (server CPU per request, warm-up included) is the least noisy cost figure, since it
    does not depend on how many cores the connection split let the server use."""
    return {"rps": statistics.median(r.rps for r in results), "p50_ms": statistics.median(r.p50_ms for r in results),
            "p99_ms": statistics.median(r.p99_ms for r in results),
            "cpu_us": statistics.median(r.server_cores / r.rps * 1e6 if r.rps else 0.0 for r in results)}


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value
