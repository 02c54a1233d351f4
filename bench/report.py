"""``docs/performance.md`` and its plots from one suite run's figures (``bench/suite.py``).

Only what the run measured goes in the tables and the verdicts; the prose around them explains the method and
what an operator should take from it, and is kept here so the document is regenerated whole, never edited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WARMUP_INTERVAL_S = 30  # the default (CACHE_MIN_AGE)
TARGETS = {"bare": 1.1, "raw": 0.7, "p99_raw": 1.5, "rss_mib": 120, "first_ms": 10, "herd_p99_ms": 50,
           "burst_p99_ms": 100, "worker_mib": 150}


def write_report(results: dict[str, Any], out: Path) -> None:
    plots = _plots(results, out.parent)
    out.write_text(render(results, plots))


def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def _cell(rows: list[dict[str, Any]], workers: int, connections: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["workers"] == workers and r["connections"] == connections), None)


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every "done when" figure the run has."""
    rows = []
    hits = results["hits"]
    for conns in (16, 64):
        cell = _cell(hits, 2, conns)
        if cell:
            rows.append((f"cache-hit req/s >= {TARGETS['bare']} x bare Flask (2 workers, {conns} connections)",
                         f"{cell['vs_bare']:.2f} x", _verdict(cell["vs_bare"] >= TARGETS["bare"])))
            rows.append((f"cache-hit req/s >= {TARGETS['raw']} x raw WSGI (2 workers, {conns} connections)",
                         f"{cell['vs_raw']:.2f} x", _verdict(cell["vs_raw"] >= TARGETS["raw"])))
    cell = _cell(hits, 2, 16)
    if cell and cell["p99_vs_raw"]:
        rows.append((f"p99 at 16 connections <= {TARGETS['p99_raw']} x raw WSGI's p99",
                     f"{cell['p99_vs_raw']:.2f} x ({cell['median']['pyea']['p99_ms']:.2f} vs "
                     f"{cell['median']['raw']['p99_ms']:.2f} ms)", _verdict(cell["p99_vs_raw"] <= TARGETS["p99_raw"])))
    loaded = [m for m in results["memory"] if m["feeds"] == 0]
    if loaded:
        rss = loaded[0]["rss_mib"]
        rows.append((f"RSS of all pyea processes under load <= {TARGETS['rss_mib']} MiB (defaults)",
                     f"{rss:.1f} MiB", _verdict(rss <= TARGETS["rss_mib"])))
    cold = results["cold"]
    rows.append((f"first request for a new feed <= provider + {TARGETS['first_ms']} ms (median)",
                 f"provider + {cold['first_overhead_ms']:.1f} ms",
                 _verdict(cold["first_overhead_ms"] <= TARGETS["first_ms"])))
    calls = [h["provider_calls"] for h in cold["herds"]]
    rows.append((f"cold herd of {cold['herd_size']}: exactly 1 provider call", f"{calls} (per herd)",
                 _verdict(all(c == 1 for c in calls))))
    floor = cold.get("baseline_herd_p99_ms", {}).get("raw")
    rows.append((f"cold herd p99 <= provider + {TARGETS['herd_p99_ms']} ms",
                 f"provider + {cold['herd_p99_overhead_ms']:.1f} ms"
                 + (f" (the same herd against raw WSGI, no provider: p99 {floor:.1f} ms)" if floor else ""),
                 _verdict(cold["herd_p99_overhead_ms"] <= TARGETS["herd_p99_ms"])))
    burst = results.get("burst")
    if burst:
        row = burst["configs"]["w2-default-batched"]
        rows.append((f"burst of {burst['feeds']} new feeds, defaults (demo tier, 2 workers): all 200, <= 2 provider "
                     "calls", f"statuses {row['all_statuses']}, calls {row['calls']:g} (most {row['max_calls']})",
                     _verdict(row["all_statuses"] == ["200"] and row["max_calls"] <= 2)))
        rows.append((f"that burst's p99 <= provider + {TARGETS['burst_p99_ms']} ms",
                     f"provider + {row['p99_over_provider_ms']:.1f} ms",
                     _verdict(row["p99_over_provider_ms"] <= TARGETS["burst_p99_ms"])))
    credits = results.get("credits")
    if credits:
        demo = next(r for r in credits if r["tier"] == "demo" and r["feeds"] == 100)
        rows.append(("100 feeds on 10 000 credits a month: a month's warming within budget (at the max age the "
                     "plan names)", f"{demo['at_needed_max_age']['calls']:,} calls (max age "
                     f"{demo['max_age_needed_ms'] / 1000:g} s; at 90 s they run out on day "
                     f"{demo['default_max_age']['ran_out_day']:.1f})",
                     _verdict(demo["at_needed_max_age"]["calls"] <= demo["budget"])))
    big = [b for b in results["batching"] if b["feeds"] >= 10000]
    if big:
        b = big[0]
        rows.append((f"10 000 feeds: refresh cycle within WARMUP_INTERVAL ({WARMUP_INTERVAL_S} s)",
                     f"{b['cycle_s']:.2f} s, {b['provider_calls']:.0f} calls of {b['batch_size']}",
                     _verdict(b["cycle_s"] <= WARMUP_INTERVAL_S)))
    mem = [m for m in results["memory"] if m["feeds"] >= 10000]
    if mem:
        worst = max(mem[0]["workers_mib"])
        rows.append((f"10 000 feeds: RSS per worker <= {TARGETS['worker_mib']} MiB", f"{worst:.1f} MiB",
                     _verdict(worst <= TARGETS["worker_mib"])))
    return rows


def render(results: dict[str, Any], plots: dict[str, str]) -> str:
    machine = results["machine"]
    lines = [
        "# Performance",
        "",
        "<!-- Generated by `python -m bench.suite`; edit bench/report.py, not this file. -->",
        "",
        "What pyea costs per request, per cold feed, per refresh cycle and in memory, each against a baseline "
        "measured in the same run: a bare Flask route and a raw WSGI callable returning the same bytes under the "
        "same gunicorn settings, the provider's own latency, and the number of provider calls a cycle needs. "
        "Figures are medians of several runs on a shared machine, so ratios matter more than absolute numbers.",
        "",
        f"Run: `python -m bench.suite{' --quick' if results.get('quick') else ''}`, code `{machine['pyea']}`, "
        f"{results['elapsed_s'] / 60:.1f} minutes. Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['platform']}, Python {machine['python']}, gunicorn {machine['gunicorn']}, Flask "
        f"{machine['flask']}; load: {machine['load_generator']}; load average at start "
        f"{machine['loadavg_at_start']}.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *[f"| {t} | {m} | {v} |" for t, m, v in targets(results)],
        "",
        "## Cache hits",
        "",
        "`POST /` with `{\"id\":\"1\",\"data\":{\"base\":\"ETH\",\"quote\":\"USD\"}}`, answered from the cache, "
        "against `bench/bare_app.py` (a Flask route returning pyea's bytes) and `bench/raw_app.py` (a WSGI "
        "callable returning them: the limit of gunicorn itself here). The three run side by side; each round "
        "measures all three in rotating order. CPU is the server's CPU time per request. All three run pyea's "
        "worker (`app/hosting/worker.py`) with its table of connections per worker (`bench/baseline_conf.py` for the "
        "baselines), so their keep-alive connections are spread over the workers alike; a measurement at 16 or "
        "64 connections in which a worker still held less than half its fair share of them measured fewer "
        "cores than configured, so it is taken again (up to 3 times), for every server alike"
        f" ({sum(r.get('measured_again', 0) for r in results['hits'])} measurements taken again in this run).",
        "",
        "| workers x threads | connections | pyea req/s | bare req/s | raw req/s | pyea / bare | pyea / raw | "
        "p50 ms pyea / bare / raw | p99 ms pyea / bare / raw | CPU us/req pyea / bare / raw |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results["hits"]:
        m = r["median"]
        lines.append(
            f"| {r['workers']} x {r['threads']} | {r['connections']} | {m['pyea']['rps']:.0f} | "
            f"{m['bare']['rps']:.0f} | {m['raw']['rps']:.0f} | {r['vs_bare']:.2f} | {r['vs_raw']:.2f} | "
            + " / ".join(f"{m[t]['p50_ms']:.2f}" for t in ("pyea", "bare", "raw")) + " | "
            + " / ".join(f"{m[t]['p99_ms']:.2f}" for t in ("pyea", "bare", "raw")) + " | "
            + " / ".join(f"{m[t]['cpu_us']:.0f}" for t in ("pyea", "bare", "raw")) + " |")
    lines += ["", *_image(plots, "hits", "Cache-hit throughput"), ""]
    mem_hits = next((r.get("memory") for r in reversed(results["hits"]) if r.get("memory")), None)
    if mem_hits:
        lines += ["Memory after this load (master + workers, RSS): " + ", ".join(
            f"{t} {m['rss_mib']:.1f} MiB" for t, m in mem_hits.items()) + ".", ""]

    lines += ["## Many feeds", "",
              "pyea (2 workers x 8 threads, 16 connections) with each request for the next of N cached feeds, "
              "against the raw WSGI callable in the same rounds. Past the front cache's 1024 entries per worker, "
              "hits are read from the shared SQLite cache.", "",
              "| feeds | pyea req/s | raw req/s | pyea / raw | p50 ms | p99 ms |", "|---:|---:|---:|---:|---:|---:|"]
    for r in results["feeds"]:
        m = r["median"]
        lines.append(f"| {r['feeds']} | {m['pyea']['rps']:.0f} | {m['raw']['rps']:.0f} | {r['vs_raw']:.2f} | "
                     f"{m['pyea']['p50_ms']:.2f} | {m['pyea']['p99_ms']:.2f} |")

    cold = results["cold"]
    lines += ["", "## Cold feeds", "",
              f"The fake provider answers after {cold['provider_latency_set_ms']:.0f} ms; measured from the load "
              f"process it took **{cold['provider_ms']:.1f} ms** (median), the baseline below. pyea runs with its "
              "defaults (2 workers x 8 threads).", "",
              f"- First request for a never-seen feed (one at a time, new connection each, "
              f"{len(cold['first_ms'])} feeds): median **{cold['first_median_ms']:.1f} ms**, provider + "
              f"{cold['first_overhead_ms']:.1f} ms.",
              f"- Herds of {cold['herd_size']} concurrent requests for one new feed (connections opened first, "
              "requests sent together):", "",
              "| herd | provider calls | p50 ms | p99 ms | slowest ms | same herd once cached: p50 / p99 ms |",
              "|---:|---:|---:|---:|---:|---|"]
    for i, h in enumerate(cold["herds"], 1):
        lines.append(f"| {i} | {h['provider_calls']} | {h['p50_ms']:.1f} | {h['p99_ms']:.1f} | {h['max_ms']:.1f} | "
                     f"{h.get('hit_p50_ms', float('nan')):.1f} / {h.get('hit_p99_ms', float('nan')):.1f} |")
    baselines = cold.get("baseline_herd_p99_ms")
    if baselines:
        lines += ["", f"The same herds of {cold['herd_size']} new connections against the baselines, which answer at "
                  "once: p99 " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in baselines.items()) + ". That is "
                  "what accepting and answering 200 simultaneous connections costs this machine (with the load "
                  "generator on the same 2 cores); a cold herd pays it after the provider's answer, since every "
                  "thread waits for that answer."]
    lines += ["", *_image(plots, "herd", "Cold herd latency"), ""]

    lines += _burst_lines(results)
    lines += ["## Background refresh", "",
              f"Feeds subscribed through the same calls a request makes, then refresh cycles of the real warmer "
              f"against the fake provider answering in {results['batching'][0].get('provider_latency_ms', 0):.0f} ms "
              "per call (`bench/warm.py`, one process per size). The baseline is the fewest calls possible: "
              "feeds / the provider's batch size.", "",
              "| feeds | batch size | calls per cycle | fewest possible | cycle s | peak RSS MiB |",
              "|---:|---:|---:|---:|---:|---:|"]
    for b in results["batching"]:
        lines.append(f"| {b['feeds']} | {b['batch_size']} | {b['provider_calls']:.0f} | {b['expected_calls']} | "
                     f"{b['cycle_s']:.2f} | {b['peak_rss_mib']:.1f} |")

    lines += ["", "## Memory", "",
              "pyea with its defaults; N feeds requested (cached and subscribed), then hit load rotating over them "
              "while the RSS of master and workers is sampled every 0.5 s (the peak is shown). 0 feeds: the load "
              "is the one-feed hit.", "",
              "| feeds | idle RSS MiB | RSS under load MiB | master | workers | PSS MiB |",
              "|---:|---:|---:|---:|---|---:|"]
    for m in results["memory"]:
        lines.append(f"| {m['feeds']} | {m['idle_rss_mib']:.1f} | {m['rss_mib']:.1f} | {m['master_mib']:.1f} | "
                     f"{', '.join(f'{w:.1f}' for w in m['workers_mib'])} | {m['pss_mib']:.1f} |")

    lines += ["", "## Workers and threads", "",
              "pyea alone at 16 connections for each `EA_WORKERS` x `EA_THREADS` (RSS after the load):", "",
              "| workers | threads | req/s | p50 ms | p99 ms | RSS MiB |", "|---:|---:|---:|---:|---:|---:|"]
    for row in results["scaling"]:
        s = row["median"]
        lines.append(f"| {row['workers']} | {row['threads']} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                     f"{s['p99_ms']:.2f} | {row['memory']['rss_mib']:.1f} |")
    lines += ["", *_scaling_advice(results), "", *STATIC_SECTIONS]
    return "\n".join(lines) + "\n"


def _burst_lines(results: dict[str, Any]) -> list[str]:
    """The burst of new feeds and the simulated month of credits (absent from runs before they existed)."""
    burst, credits = results.get("burst"), results.get("credits")
    lines: list[str] = []
    if burst:
        lines += ["## A burst of new feeds", "",
                  f"{burst['feeds']} different never-seen feeds requested at once (one connection each, requests "
                  f"written together; `bench/burst.py`), against the fake provider answering in "
                  f"{burst['provider_ms']:.1f} ms as the client sees it. Default tier: CoinGecko's demo plan (30 "
                  "calls a minute); large: lite (500 a minute). Baseline: the same burst with "
                  "`FOREGROUND_BATCH_WINDOW_MS=0`, in the same rounds; medians of "
                  f"{burst['rounds']} interleaved rounds.", "",
                  "| workers | tier | batching | provider calls (most) | statuses seen | p50 ms | p99 ms "
                  "| p99 - provider |",
                  "|---:|---|---|---:|---|---:|---:|---:|"]
        for name, row in burst["configs"].items():
            workers, tier, batching = name.split("-")
            lines.append(f"| {workers[1:]} | {tier} | {batching} | {row['calls']:g} ({row['max_calls']}) | "
                         f"{', '.join(row['all_statuses'])} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                         f"{row['p99_over_provider_ms']:.1f} |")
        lines.append("")
    if credits:
        lines += ["## A month of credits", "",
                  "A 31-day month of warming simulated over the warmer's own decisions (`bench/credits.py`: every "
                  "30 s check asks the credit plan for its period and `due_for_refresh` whether to refresh; one call "
                  "per 100 feeds). Baseline: warming without a budget. 'Runs out' is the day the calls passed the "
                  "plan's monthly credits.", "",
                  "| plan | credits | feeds | unpaced calls | at 90 s max age: calls (runs out on day) "
                  "| max age the plan names | calls at that max age |",
                  "|---|---:|---:|---:|---|---:|---:|"]
        for r in credits:
            out = r["default_max_age"]["ran_out_day"]
            needed = r["max_age_needed_ms"]
            lines.append(f"| {r['tier']} | {r['budget']:,} | {r['feeds']:,} | {r['unpaced']:,} | "
                         f"{r['default_max_age']['calls']:,} ({'lasts' if out is None else f'{out:.1f}'}) | "
                         f"{'-' if needed is None else f'{needed / 1000:g} s'} | {r['at_needed_max_age']['calls']:,} |")
        lines += ["", "At the default 90 s max age and 30 s checks warming already refreshes as late as values allow, "
                  "so pacing alone cannot save a small plan: pyea warns at start, in `/status` and in "
                  "`/health?deep=1`, and names the `CACHE_MAX_AGE` that would make the credits last.", ""]
    return lines


def _scaling_advice(results: dict[str, Any]) -> list[str]:
    rows = results["scaling"]
    by_workers: dict[int, float] = {}
    for row in rows:
        by_workers[row["workers"]] = max(by_workers.get(row["workers"], 0.0), row["median"]["rps"])
    if not by_workers:
        return []
    growth = ", ".join(f"{w} worker{'s' if w > 1 else ''}: {rps:.0f} req/s" for w, rps in sorted(by_workers.items()))
    cores = results["machine"]["cores"]
    return [f"Best throughput by workers in this run: {growth}. A cache hit is CPU-bound Python, at most one core "
            f"per worker (the GIL), so a {cores}-core VM needs {cores} workers to use its cores; more workers than "
            "cores can still win a round, because gthread keeps each keep-alive connection on the worker that "
            "accepted it and an unlucky split leaves a core idle (the `splits` of `bench/cache_hit.py --matrix` "
            "show it), and because this machine's steal time varies. Threads beyond a few add little hit "
            "throughput, but every provider call in flight holds one for up to `API_TIMEOUT`. **Set `EA_WORKERS` "
            "to the VM's cores (the default 2 suits a 2-core VM) and keep `EA_THREADS=8`**; each worker costs "
            "about 45-50 MiB."]


def _image(plots: dict[str, str], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({plots[name]})"] if name in plots else []


STATIC_SECTIONS = [
    "## What the hot path does, and what was removed from it",
    "",
    "Profiled in-process with `python -m bench.profile_hit` (cProfile, or pyinstrument when installed): a hit "
    "used to cost 140-170 us in-process against 95 us for the bare Flask route, most of it Flask's request "
    "context, URL matching and Response object, then prometheus_client's `labels()`.",
    "",
    "| change | why |",
    "|---|---|",
    "| adapter routes served straight from the WSGI environ (`app/web/wsgi.py`, installed as Flask's `wsgi_app`) | "
    "Flask's per-request machinery cost more than the hit; `/health`, `/status`, metrics and other methods "
    "still go through Flask, and the access check, validation, metrics and every error answer are unchanged |",
    "| labelled metric series kept at hand (`Metrics._child`) | `labels()` validates and locks on every call |",
    "| job id encoded with the C string encoder | `json.dumps` sets up an encoder per call |",
    "| body read from the environ, one prebuilt strict JSON decoder, no query parsing without a query string | "
    "werkzeug's stream wrapper and per-call decoders |",
    "| validation memoised per distinct `data`; a per-process front cache (`CACHE_FRONT_TTL`) before SQLite | "
    "nodes ask for the same few feeds again and again |",
    "| workers of one machine coalesce cold fetches on a file lock per key (`app/fetch/coalescing.py`) | one provider "
    "call per cold feed across workers with default settings, and no polling delay for the waiting worker |",
    "| hit-path metric counts, gauges and request durations added up in memory, written out every 0.5 s "
    "(`app/observe/metrics.py`) | in "
    "gunicorn's multiprocess mode each update is a locked write to a memory-mapped file: five per hit cost a "
    "quarter of the throughput (A/B: 3906 against 5175 req/s with metrics off) |",
    "| subscription extensions on hits written once a second in one transaction; refresh cycles store each "
    "batch in one transaction | thousands of feeds coming due together queued request threads on SQLite's "
    "write lock; a commit per value was most of a 10 000-feed cycle |",
    "| workers accept new connections fairly: each publishes the connections it holds in a table shared by the "
    "workers, and one holding more than a sibling leaves a new connection to it for 2 ms (`app/hosting/worker.py`) | "
    "gthread keeps a connection on the worker that accepted it; one worker often took a whole burst, and "
    "served it on one core at a third of the throughput |",
    "| only the process holding the background lease loads APScheduler (`app/background/scheduler.py`) | the other "
    "workers only wait; APScheduler and the asyncio it imports are about 3 MiB each |",
    "| a hot entry past `CACHE_FRONT_TTL` is answered once more while one thread per worker reads it again "
    "(`app/stores/front_cache.py`) | every request thread that read SQLite opened a connection of its own (about 140 "
    "KiB each), and waited on the read |",
    "| cache keys hashed with BLAKE2 (built into Python) instead of SHA-1 | SHA-1 goes through OpenSSL, whose "
    "first use mapped about 1 MiB more of libcrypto into each worker |",
    "",
    "## Known limits",
    "",
    "- **Memory is counted as the sum of RSS**, which counts pages shared between the master and the workers "
    "once per process; PSS (shared pages divided among their users) is what the VM actually spends. The "
    "floor is imports: Python itself is about 11 MiB, gunicorn 13 MiB more in the master, and each worker "
    "loads requests/urllib3/ssl (about 25 MiB), Flask and jsonschema; only the worker holding the background "
    "lease loads APScheduler and the asyncio it imports (about 3 MiB). Limiting glibc malloc arenas made no "
    "measurable difference.",
    "- **A cold herd pays for its connections after the provider answers**: every thread of both workers is "
    "waiting for that one answer, so the requests queued behind them are parsed and answered only then. More "
    "threads made it worse in an A/B (8: p99 provider + 118 ms; 32: + 179 ms; 64: + 174 ms, measured with an "
    "earlier load client whose 200 threads added their own queueing to every figure), because the work is "
    "CPU-bound under one GIL per worker.",
    "- **RSS grows with the connections served**: after the 64-connection hit rounds the same defaults measured "
    "more than under the 16-connection load of the memory table (both are in this report); every thread a "
    "request runs on keeps its own allocator arena and stack.",
    "- **gthread keeps a keep-alive connection on the worker that accepted it**, and plain gthread workers race "
    "for each new connection: one worker often won a whole burst and one core served the load (`wrk -c16`: "
    "[0, 16] in 3 of 6 runs). pyea's workers accept fairly (`app/hosting/worker.py`), and so do the baselines' here "
    "(`conns/worker` in the suite's output shows every split).",
    "",
    "## Reproducing",
    "",
    "```sh",
    "pip install '.[bench]'          # matplotlib for the plots; wrk (apt-get install wrk) is used when present",
    "python -m bench.suite           # writes this file, its plots and bench/results/suite.json",
    "python -m bench.cache_hit       # the hit comparison alone; --matrix for workers x threads",
    "python -m bench.profile_hit     # where a hit's time goes, in-process",
    "python -m bench.burst 3         # the burst of new feeds alone, 3 rounds",
    "python -m bench.credits         # the simulated month of credits alone (arithmetic, seconds)",
    "```",
]


def _plots(results: dict[str, Any], docs: Path) -> dict[str, str]:
    """PNG plots beside the document; none when matplotlib is missing (the tables still say everything)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install '.[bench]'): no plots")
        return {}
    made = {}
    hits = results["hits"]
    configs = sorted({(r["workers"], r["threads"]) for r in hits})
    fig, axes = plt.subplots(1, len(configs), figsize=(5 * len(configs), 3.6), squeeze=False)
    for ax, (w, t) in zip(axes[0], configs, strict=True):
        rows = [r for r in hits if (r["workers"], r["threads"]) == (w, t)]
        x = range(len(rows))
        for offset, target in zip((-0.27, 0, 0.27), ("pyea", "bare", "raw"), strict=True):
            ax.bar([i + offset for i in x], [r["median"][target]["rps"] for r in rows], width=0.27,
                   label={"pyea": "pyea", "bare": "bare Flask", "raw": "raw WSGI"}[target])
        ax.set_xticks(list(x), [f"{r['connections']} conn" for r in rows])
        ax.set_title(f"{w} worker{'s' if w > 1 else ''} x {t} threads")
        ax.set_ylabel("cache hits / s")
    axes[0][0].legend()
    made["hits"] = _save(fig, docs / "perf-hits.png")
    cold = results["cold"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, h in enumerate(cold["herds"], 1):
        ax.plot(h["latencies_ms"], [k / len(h["latencies_ms"]) for k in range(1, len(h["latencies_ms"]) + 1)],
                label=f"herd {i}")
    ax.axvline(cold["provider_ms"], color="grey", linestyle="--", label="provider latency")
    ax.set_xlabel("latency ms")
    ax.set_ylabel(f"fraction of {cold['herd_size']} requests")
    ax.legend(fontsize="small")
    made["herd"] = _save(fig, docs / "perf-herd.png")
    return made


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name
