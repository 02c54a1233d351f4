#!/usr/bin/env python
"""Every pyea benchmark in one run, written to ``docs/performance.md`` with its plots.

    python -m bench.suite            # the full suite (about 15 minutes on 2 cores)
    python -m bench.suite --quick    # fewer rounds and sizes: checks the suite itself (about 4 minutes)

Each section measures pyea against a baseline in the same run (the bare Flask route and the raw WSGI callable
under the same gunicorn settings, the provider's own latency, the number of batches needed); figures are
medians of several runs. Load comes from wrk when installed, else from a Python load generator in separate
processes, always on 127.0.0.1. The raw figures go to ``bench/results/suite.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._lib import BENCH, REPO, BenchError, LoadGenerator, machine_info, print_machine
from bench.burst import bursts
from bench.cache_hit import matrix
from bench.credits import simulate
from bench.herd import cold
from bench.hits import feed_rotation, hit_matrix
from bench.memory import memory_by_feeds
from bench.report import write_report

FULL = {"configs": [(1, 8), (2, 8)], "connections": [1, 16, 64], "rounds": 6, "duration": 3, "bursts": 3,
        "feed_sizes": [1, 100, 10000], "herds": 5, "first_samples": 20, "batch_sizes": [100, 1000, 10000],
        "memory_sizes": [0, 1000, 10000], "matrix_rounds": 2}
QUICK = {"configs": [(2, 8)], "connections": [16], "rounds": 1, "duration": 2, "bursts": 1, "feed_sizes": [1, 100],
         "herds": 2, "first_samples": 5, "batch_sizes": [100], "memory_sizes": [0], "matrix_rounds": 1}
PROVIDER_LATENCY_S = 0.1
BATCH_PROVIDER_LATENCY_MS = 50


def run(plan: dict[str, Any], loadgen: LoadGenerator, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def section(name: str, title: str) -> Path:
        """Each section's servers get their own directory (cache directories, logs, wrk scripts)."""
        print(f"\n== {title}", flush=True)
        results.setdefault("section_s", {})[name] = time.monotonic()
        (workdir / name).mkdir()
        return workdir / name

    where = section("hits", "cache hits: pyea, bare Flask and raw WSGI")
    results["hits"] = hit_matrix(loadgen, where, plan["configs"], plan["connections"], plan["rounds"], 1,
                                 plan["duration"])
    where = section("feeds", "cache hits rotating over many feeds")
    results["feeds"] = feed_rotation(loadgen, where, plan["feed_sizes"], 2, 8, 16, plan["rounds"], 1,
                                     plan["duration"])
    where = section("cold", "cold feeds: first request and herd")
    results["cold"] = cold(where, PROVIDER_LATENCY_S, plan["first_samples"], 200, plan["herds"])
    print(f"  provider {results['cold']['provider_ms']:.1f} ms; first request {results['cold']['first_median_ms']:.1f}"
          f" ms; herd p99 {results['cold']['herd_p99_ms']:.1f} ms; calls per herd "
          f"{[h['provider_calls'] for h in results['cold']['herds']]}", flush=True)
    where = section("burst", "a burst of 100 new feeds: batched in the foreground")
    results["burst"] = bursts(where, BATCH_PROVIDER_LATENCY_MS / 1000, plan["bursts"], [1, 2])
    for name, row in results["burst"]["configs"].items():
        print(f"  {name}: calls {row['calls']} (max {row['max_calls']}), statuses {row['all_statuses']}, p99 "
              f"{row['p99_ms']:.1f} ms (provider {results['burst']['provider_ms']:.1f})", flush=True)
    section("credits", "a simulated month of warming against monthly credits")
    results["credits"] = simulate()
    section("batching", "background refresh: batches per cycle")
    results["batching"] = batching(plan["batch_sizes"])
    where = section("memory", "memory by subscribed feeds")
    results["memory"] = memory_by_feeds(loadgen, where, plan["memory_sizes"], 16, plan["duration"] + 2)
    where = section("scaling", "workers x threads")
    args = argparse.Namespace(connections=16, warmup=1, matrix_duration=plan["duration"],
                              matrix_rounds=plan["matrix_rounds"])
    results["scaling"] = matrix(args, loadgen, where)["rows"]
    starts = results.pop("section_s")
    ends = [*list(starts.values())[1:], time.monotonic()]
    results["section_seconds"] = {name: round(end - start, 1) for (name, start), end in zip(starts.items(), ends,
                                                                                             strict=True)}
    return results


def batching(sizes: list[int]) -> list[dict[str, Any]]:
    """bench/warm.py in its own processes (one per size, so each peak RSS is that size's alone)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run([sys.executable, "-m", "bench.warm", "--sizes", *map(str, sizes), "--cycles", "3",
                               "--latency-ms", str(BATCH_PROVIDER_LATENCY_MS), "--json", out.name],
                              capture_output=True, text=True, timeout=1800, cwd=REPO)
        print(done.stdout, flush=True)
        if done.returncode != 0:
            raise BenchError(f"warm.py failed: {done.stderr[-2000:]}")
        return json.loads(Path(out.name).read_text())


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds through the sections' finally blocks, so no gunicorn this run started is left behind."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes (checks the suite)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "suite.json")
    parser.add_argument("--from-json", type=Path, help="measure nothing: write the report from an earlier run")
    args = parser.parse_args(argv)
    if args.from_json:
        write_report(json.loads(args.from_json.read_text()), args.out)
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="pyea-suite-") as tmp:
        use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
        loadgen = LoadGenerator(use_wrk, Path(tmp), 1)
        info = machine_info(loadgen)
        print_machine(info)
        started = time.monotonic()
        try:
            results = run(plan, loadgen, Path(tmp))
        except BenchError as exc:
            print(f"\nFAILED: {exc}", file=sys.stderr)
            return 1
    results.update(machine=info, plan=plan, quick=args.quick, elapsed_s=round(time.monotonic() - started, 1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, args.out)
    print(f"\nwrote {args.out} and {args.json} in {results['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
