"""A simulated month of warming: how many provider calls 10, 100 and 1 000 feeds cost on each CoinGecko plan,
against its monthly credits.

Arithmetic over the warmer's own decisions, not a fast clock: every check of a 31-day month (one per
WARMUP_INTERVAL) asks ``app/core/credits.plan`` for the period with the credits used so far, and
``due_for_refresh`` whether the feeds are refreshed at that check (each refresh costs one call per 100 feeds,
CoinGecko's batch size). Run at the default CACHE_MAX_AGE (90 s) and at the max age the plan names as needed.
The baseline is warming without a budget (its own cadence), in the same run.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.background.warmer import due_for_refresh
from app.core.credits import plan

BATCH = 100
INTERVAL_MS = 30_000
DEFAULT_MAX_AGE_MS = 90_000
MONTH_START_MS = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
MONTH_MS = 31 * 86_400_000


def coingecko_budgets() -> dict[str, int]:
    limits = json.loads((Path(__file__).resolve().parent.parent / "limits.json").read_text())
    return {tier: values["monthlyCredits"] for tier, values in limits["coingecko"]["http"].items()
            if "monthlyCredits" in values}


def month(feeds: int, budget: int | None, max_age_ms: int) -> dict[str, Any]:
    """Calls a month of checks spends, and the day (1-based) the budget ran out, if it did."""
    calls_per_refresh = math.ceil(feeds / BATCH)
    used, last_refresh, ran_out = 0, None, None
    for check in range(MONTH_MS // INTERVAL_MS):
        now = MONTH_START_MS + check * INTERVAL_MS
        period = plan(budget, used, calls_per_refresh, now, INTERVAL_MS, max_age_ms).period_ms if budget else None
        if last_refresh is None or due_for_refresh(now - last_refresh, INTERVAL_MS, max_age_ms, period):
            used += calls_per_refresh
            last_refresh = now
            if budget and ran_out is None and used > budget:
                ran_out = check * INTERVAL_MS / 86_400_000 + 1
    return {"calls": used, "ran_out_day": ran_out}


def simulate(feed_counts: tuple[int, ...] = (10, 100, 1000)) -> list[dict[str, Any]]:
    rows = []
    for tier, budget in coingecko_budgets().items():
        for feeds in feed_counts:
            first = plan(budget, 0, math.ceil(feeds / BATCH), MONTH_START_MS, INTERVAL_MS, DEFAULT_MAX_AGE_MS)
            needed = first.max_age_needed_ms or DEFAULT_MAX_AGE_MS
            rows.append({"tier": tier, "budget": budget, "feeds": feeds,
                         "unpaced": month(feeds, None, DEFAULT_MAX_AGE_MS)["calls"],
                         "default_max_age": month(feeds, budget, DEFAULT_MAX_AGE_MS),
                         "max_age_needed_ms": first.max_age_needed_ms,
                         "at_needed_max_age": month(feeds, budget, needed)})
    return rows


if __name__ == "__main__":
    for row in simulate():
        at, short = row["at_needed_max_age"], row["default_max_age"]
        print(f"{row['tier']:8s} {row['budget']:>9,} credits {row['feeds']:>5} feeds: unpaced {row['unpaced']:>9,}; "
              f"90 s max age {short['calls']:>9,} (out on day {short['ran_out_day']}); "
              f"max age {row['max_age_needed_ms']} ms -> {at['calls']:,} (out on day {at['ran_out_day']})")
