#!/usr/bin/env python
"""Cache-hit throughput and latency of pyea's ``POST /`` under real gunicorn, against a bare Flask route.

A cache hit is what a node sees almost every time, so its cost is pyea's capacity. The number alone says little
on a shared 2-core machine, so the same run also measures ``bench/bare_app.py``: Flask under the same gunicorn
settings returning the very bytes pyea returned. The ratio pyea/bare is what is comparable across machines.

Noise control: both servers run side by side for the whole run and the rounds alternate between them (ABBA),
so drift of the machine hits both; each run has its own warm-up; figures are medians over rounds.

Checks (the run fails, exit status 1, when one does not hold): every measured response is HTTP 200, no socket
errors, and the provider was not called during the measured phase (every request was a cache hit).

``--matrix`` runs pyea alone over workers x threads and reports throughput and the memory (RSS) of all its
processes, to choose ``EA_WORKERS``/``EA_THREADS`` by measurement.

Run from the repository root: ``python -m bench.cache_hit`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.devkit.fake_http import FakeProvider, free_port
from app.devkit.testing import GunicornProcess
from bench._lib import (
    COMPARED_SETTINGS,
    MATRIX_THREADS,
    MATRIX_WORKERS,
    RATIO_TARGET,
    REPO,
    RSS_TARGET_MIB,
    SPLIT_KINDS,
    START_TIMEOUT_S,
    BenchError,
    CpuMeter,
    LoadGenerator,
    LoadResult,
    Memory,
    bare_args,
    check_load,
    fmt,
    gunicorn_settings,
    machine_info,
    memory_of,
    positive,
    post,
    print_machine,
    pyea_server,
    split_kind,
    summarise,
    warm,
)

# ------------------------------------------------------------------------------------------------ load results


# ------------------------------------------------------------------------------------------------------- cpu


# ----------------------------------------------------------------------------------------------------- wrk


# --------------------------------------------------------------------------------- python load generator


# --------------------------------------------------------------------------------------------------- servers


# ----------------------------------------------------------------------------------------------- processes


# --------------------------------------------------------------------------------------------- environment


# ---------------------------------------------------------------------------------------------------- modes


def compare(args: argparse.Namespace, loadgen: LoadGenerator, workdir: Path) -> dict[str, Any]:
    """pyea and bare_app side by side, rounds alternating between them."""
    pyea: GunicornProcess | None = None
    bare: GunicornProcess | None = None
    with FakeProvider() as provider:
        try:
            pyea = pyea_server(provider, workdir, "pyea", args.workers, args.threads)
            pyea.start(START_TIMEOUT_S)
            body = warm(pyea, provider)
            body_file = workdir / "body.json"
            body_file.write_bytes(body)
            resolved = gunicorn_settings(pyea.args, REPO, pyea.env)
            port = free_port()
            bare_env = {**os.environ, "BARE_BODY_FILE": str(body_file)}
            command = bare_args(resolved, port)
            bare_resolved = gunicorn_settings(command, REPO, bare_env)
            differ = {k: (resolved.get(k), bare_resolved.get(k)) for k in COMPARED_SETTINGS
                      if resolved.get(k) != bare_resolved.get(k)}
            if differ:
                raise BenchError(f"gunicorn settings differ (pyea, bare): {differ}")
            # Its own -c (bench/baseline_conf.py): the repository's gunicorn.conf.py is never read for it.
            bare = GunicornProcess(bare_env, command, port=port, log_path=workdir / "bare.log", cwd=REPO)
            bare.start(START_TIMEOUT_S)
            status, bare_body = post(bare.url)
            if status != 200 or bare_body != body:
                raise BenchError("bare_app does not answer with pyea's bytes")
            settings = {k: resolved[k] for k in COMPARED_SETTINGS}
            print(f"gunicorn (both): {settings}")
            print(f"response: {len(body)} bytes, identical from both; {args.connections} connections, "
                  f"{args.warmup} s warm-up + {args.duration} s measured per run, {args.rounds} rounds\n",
                  flush=True)

            calls_before = provider.count()
            targets = {"pyea": pyea.url, "bare": bare.url}
            masters = {"pyea": pyea.proc.pid, "bare": bare.proc.pid}
            runs: dict[str, list[LoadResult]] = {"pyea": [], "bare": []}
            for index in range(args.rounds):
                order = ["pyea", "bare"] if index % 2 == 0 else ["bare", "pyea"]
                for name in order:
                    other = "bare" if name == "pyea" else "pyea"
                    with CpuMeter(masters[name], [masters[other]]) as cpu:
                        result = loadgen.measure(targets[name], masters[name], args.connections, args.warmup,
                                                 args.duration)
                    cpu.annotate(result)
                    check_load(f"round {index + 1} {name}", result)
                    runs[name].append(result)
                    print(f"round {index + 1}  {name:4}  {fmt(result)}", flush=True)
            provider_calls = provider.count() - calls_before
            if provider_calls:
                raise BenchError(f"the measured phase called the provider {provider_calls} times: not all hits")
            memory = {"pyea": memory_of(pyea.proc.pid), "bare": memory_of(bare.proc.pid)}
        finally:
            if bare is not None:
                bare.stop()
            if pyea is not None:
                pyea.stop()

    report = {"mode": "compare", "workers": args.workers, "threads": args.threads,
              "connections": args.connections, "warmup_s": args.warmup, "duration_s": args.duration,
              "rounds": args.rounds, "gunicorn_settings": settings, "response_bytes": len(body),
              "runs": {name: [asdict(r) for r in results] for name, results in runs.items()},
              "memory": {k: asdict(v) for k, v in memory.items()}, "provider_calls_measured": provider_calls}
    report.update(summarise_compare(runs))
    print("\nmemory after the load (RSS sums master + workers; PSS shares their common pages):")
    for name in ("pyea", "bare"):
        m = memory[name]
        print(f"  {name:6} RSS {m.rss_mib:6.1f} MiB (master {m.rss_master_mib:.1f}, workers {m.rss_workers_mib})  "
              f"PSS {m.pss_mib:6.1f} MiB  threads per worker {m.threads_per_worker}")
    print(f"checks: all {sum(r.requests for rs in runs.values() for r in rs)} measured responses HTTP 200, "
          f"0 socket errors, 0 provider calls during the measured phase")
    return report


def summarise_compare(runs: Mapping[str, Sequence[LoadResult]]) -> dict[str, Any]:
    """Medians and the ratio, overall and by connection split, printed and returned for the JSON."""
    summary = {name: summarise(results) for name, results in runs.items()}
    ratio = summary["pyea"]["rps"] / summary["bare"]["rps"]
    round_ratios = [p.rps / b.rps for p, b in zip(runs["pyea"], runs["bare"], strict=True)]
    print("\nmedians over all rounds:")
    print(f"  {'target':6} {'runs':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10}")
    for name in ("pyea", "bare"):
        s = summary[name]
        print(f"  {name:6} {len(runs[name]):4} {s['rps']:8.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} "
              f"{s['cpu_us']:10.0f}")
    verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
    print(f"ratio pyea/bare (median req/s): {ratio:.3f}  (target >= {RATIO_TARGET}: {verdict}); "
          f"per-round ratios {', '.join(f'{r:.2f}' for r in round_ratios)}")
    cpu_ratio = summary["bare"]["cpu_us"] / summary["pyea"]["cpu_us"] if summary["pyea"]["cpu_us"] else None
    if cpu_ratio:
        print(f"CPU per request, bare/pyea: {cpu_ratio:.3f}")

    by_split: dict[str, Any] = {}
    print("\nby connection split (balanced: every worker held >= half its share; pinned: all on one worker):")
    print(f"  {'split':9} {'pyea runs':>9} {'req/s':>7} {'p50':>6} {'p99':>6}   {'bare runs':>9} {'req/s':>7} "
          f"{'p50':>6} {'p99':>6}   ratio")
    for kind in SPLIT_KINDS:
        chosen = {name: [r for r in results if split_kind(r) == kind] for name, results in runs.items()}
        if not any(chosen.values()):
            continue
        medians = {name: summarise(results) if results else None for name, results in chosen.items()}
        kind_ratio = (medians["pyea"]["rps"] / medians["bare"]["rps"]
                      if medians["pyea"] and medians["bare"] else None)
        cells = []
        for name in ("pyea", "bare"):
            m = medians[name]
            cells.append(f"{len(chosen[name]):9} " + (f"{m['rps']:7.0f} {m['p50_ms']:6.2f} {m['p99_ms']:6.1f}"
                                                      if m else f"{'-':>7} {'-':>6} {'-':>6}"))
        print(f"  {kind:9} {cells[0]}   {cells[1]}   {'-' if kind_ratio is None else f'{kind_ratio:.3f}'}")
        by_split[kind] = {"runs": {name: len(results) for name, results in chosen.items()}, "median": medians,
                          "ratio": kind_ratio}
    return {"median": summary, "ratio": ratio, "round_ratios": round_ratios, "ratio_target": RATIO_TARGET,
            "ratio_target_met": ratio >= RATIO_TARGET, "cpu_ratio": cpu_ratio, "by_split": by_split}


def pool(paths: Sequence[Path]) -> dict[str, Any]:
    """Several runs read back from their JSON: a few rounds cannot average out the connection-split lottery."""
    reports = [json.loads(path.read_text()) for path in paths]
    modes = {report.get("mode") for report in reports}
    if modes not in ({"compare"}, {"matrix"}):
        raise BenchError("give the JSON of default runs only, or of --matrix runs only")
    for path, report in zip(paths, reports, strict=True):
        code = report.get("machine", {}).get("pyea", "unknown")
        extra = f"ratio {report['ratio']:.3f}, " if report["mode"] == "compare" else ""
        print(f"{path.name}: {extra}code {code}, elapsed {report.get('elapsed_s')} s")
    files = [{"file": path.name, "pyea": report.get("machine", {}).get("pyea", "unknown")}
             for path, report in zip(paths, reports, strict=True)]
    if modes == {"compare"}:
        runs: dict[str, list[LoadResult]] = {"pyea": [], "bare": []}
        for report in reports:
            for name in runs:
                runs[name].extend(LoadResult(**r) for r in report["runs"][name])
        return {"mode": "pool", "files": files, **summarise_compare(runs)}
    grid_runs: dict[tuple[int, int], list[LoadResult]] = {}
    memory: dict[tuple[int, int], Memory] = {}
    for report in reports:
        for row in report["rows"]:
            cfg = (row["workers"], row["threads"])
            grid_runs.setdefault(cfg, []).extend(LoadResult(**r) for r in row["runs"])
            # Memory hardly varies between runs; keep the largest, as the target is a ceiling.
            seen = Memory(**row["memory"])
            if cfg not in memory or seen.rss_mib > memory[cfg].rss_mib:
                memory[cfg] = seen
    return {"mode": "pool-matrix", "files": files, "rows": matrix_table(grid_runs, memory)}


def matrix(args: argparse.Namespace, loadgen: LoadGenerator, workdir: Path) -> dict[str, Any]:
    """Every workers x threads pyea at once, idle until its turn, so rounds can rotate over configurations."""
    grid = [(w, t) for w in MATRIX_WORKERS for t in MATRIX_THREADS]
    servers: dict[tuple[int, int], GunicornProcess] = {}
    runs: dict[tuple[int, int], list[LoadResult]] = {cfg: [] for cfg in grid}
    with FakeProvider() as provider:
        try:
            for w, t in grid:
                servers[(w, t)] = pyea_server(provider, workdir, f"pyea-{w}x{t}", w, t)
                servers[(w, t)].start(START_TIMEOUT_S)
                warm(servers[(w, t)], provider)
            calls_before = provider.count()
            print(f"{len(grid)} pyea instances up; {args.connections} connections, {args.warmup} s warm-up + "
                  f"{args.matrix_duration} s measured, {args.matrix_rounds} rounds\n", flush=True)
            for index in range(args.matrix_rounds):
                shift = index * len(grid) // max(1, args.matrix_rounds)
                order = grid[shift:] + grid[:shift]
                for w, t in order if index % 2 == 0 else reversed(order):
                    idle = [s.proc.pid for cfg, s in servers.items() if cfg != (w, t)]
                    with CpuMeter(servers[(w, t)].proc.pid, idle) as cpu:
                        result = loadgen.measure(servers[(w, t)].url, servers[(w, t)].proc.pid, args.connections,
                                                 args.warmup, args.matrix_duration)
                    cpu.annotate(result)
                    check_load(f"round {index + 1} {w}x{t}", result)
                    runs[(w, t)].append(result)
                    print(f"round {index + 1}  {w} workers x {t:2} threads  {fmt(result)}", flush=True)
            provider_calls = provider.count() - calls_before
            if provider_calls:
                raise BenchError(f"the measured phase called the provider {provider_calls} times: not all hits")
            memory = {cfg: memory_of(server.proc.pid) for cfg, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()

    rows = matrix_table(runs, memory)
    return {"mode": "matrix", "connections": args.connections, "warmup_s": args.warmup,
            "duration_s": args.matrix_duration, "rounds": args.matrix_rounds, "rss_target_mib": RSS_TARGET_MIB,
            "rows": rows, "provider_calls_measured": provider_calls}


def matrix_table(runs: Mapping[tuple[int, int], Sequence[LoadResult]],
                 memory: Mapping[tuple[int, int], Memory]) -> list[dict[str, Any]]:
    rows = []
    print(f"\nmedians over rounds (RSS: master + workers after the load; target <= {RSS_TARGET_MIB} MiB; "
          f"splits: balanced/skewed/pinned runs):")
    print(f"  {'workers':>7} {'threads':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8} {'PSS MiB':>8} "
          f"{'splits':>7} {'unpinned req/s':>14}")
    for (w, t), results in sorted(runs.items()):
        s, m = summarise(results), memory[(w, t)]
        kinds = [split_kind(r) for r in results]
        unpinned = [r for r, kind in zip(results, kinds, strict=True) if kind != "pinned"]
        unpinned_rps = summarise(unpinned)["rps"] if unpinned else float("nan")
        splits = "/".join(str(kinds.count(k)) for k in ("balanced", "skewed", "pinned"))
        flag = "" if m.rss_mib <= RSS_TARGET_MIB else "  over memory target"
        print(f"  {w:7} {t:7} {s['rps']:8.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {m.rss_mib:8.1f} "
              f"{m.pss_mib:8.1f} {splits:>7} {unpinned_rps:14.0f}{flag}")
        rows.append({"workers": w, "threads": t, "median": s, "memory": asdict(m), "splits": kinds,
                     "median_rps_unpinned": unpinned_rps, "runs": [asdict(r) for r in results]})
    return rows


# ------------------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cache-hit throughput/latency of pyea's POST / under gunicorn, against a bare Flask route "
                    "returning the same bytes under the same gunicorn settings, in the same run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--workers", type=positive, default=2, help="gunicorn workers (EA_WORKERS)")
    parser.add_argument("--threads", type=positive, default=8, help="threads per worker (EA_THREADS)")
    parser.add_argument("--connections", type=positive, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--duration", type=positive, default=5, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each run (0: none)")
    parser.add_argument("--rounds", type=positive, default=5, help="rounds, each measuring pyea and bare")
    parser.add_argument("--matrix", action="store_true",
                        help="instead: pyea over workers {1,2,3} x threads {4,8,16}, with memory")
    parser.add_argument("--matrix-duration", type=positive, default=3, help="measured seconds per matrix run")
    parser.add_argument("--matrix-rounds", type=positive, default=3, help="rounds of the matrix")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk when installed, else the Python generator")
    parser.add_argument("--wrk-threads", type=positive, default=1,
                        help="wrk threads; one leaves the most CPU to the servers on a small machine")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write all figures to this JSON file")
    parser.add_argument("--pool", type=Path, nargs="+", metavar="JSON",
                        help="measure nothing: pool the rounds of earlier runs saved with --json (all default "
                             "runs, or all --matrix runs)")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM must unwind through the finally blocks, or the gunicorns this run started would be orphaned."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pool:
        try:
            report = pool(args.pool)
        except (BenchError, OSError, ValueError, KeyError, TypeError) as exc:
            print(f"cannot pool: {exc}", file=sys.stderr)
            return 1
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    if args.loadgen == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="pyea-bench-") as tmp:
        workdir = Path(tmp)
        use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
        loadgen = LoadGenerator(use_wrk, workdir, args.wrk_threads)
        info = machine_info(loadgen)
        print_machine(info)
        started = time.monotonic()
        try:
            report = matrix(args, loadgen, workdir) if args.matrix else compare(args, loadgen, workdir)
        except BenchError as exc:
            print(f"\nFAILED: {exc}", file=sys.stderr)
            return 1
        report["machine"] = info
        report["elapsed_s"] = round(time.monotonic() - started, 1)
        print(f"\nelapsed {report['elapsed_s']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
