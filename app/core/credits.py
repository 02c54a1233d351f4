"""Monthly credit budgets: how often warming may refresh an endpoint so a month's credits last the month.

A plan's credits are counted per calendar month (UTC), as CoinGecko's and CoinMarketCap's free plans reset. What
warming will spend is known in advance: every refresh of the subscribed feeds costs ``calls_per_refresh`` calls
(feeds over batch size, summed over the adapter's endpoints), once per refresh period. So the period that keeps
projected use (credits used so far plus the rest of the month at that pace) within the budget is arithmetic,
with no I/O: the warmer applies it, ``/status`` shows it, and ``bench/credits.py`` simulates a month with it.

The period is never shorter than the cadence warming would have anyway (``default_period_ms``) and never longer
than ``CACHE_MAX_AGE`` allows with one check to spare: a value must be refreshed before it lapses, or requests
would miss and fetch it themselves, which costs credits too. When even that longest period does not fit, the
plan says so (``fits``) and when the credits would run out; the caller warns.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class CreditPlan:
    """The pace warming keeps for a budget: its refresh period, the month's projected use at that pace, and,
    when that is over budget, when the credits run out (Unix ms)."""

    budget: int
    used: int
    calls_per_refresh: int
    period_ms: int
    projected: int
    fits: bool
    runs_out_ms: int | None
    #: The CACHE_MAX_AGE that would let the budget last (None when it does already, or nothing would).
    max_age_needed_ms: int | None
    month: str


def month_of(now_ms: int) -> tuple[str, int, int]:
    """The calendar month (UTC) holding ``now_ms``: its name (``2026-12``), start and end in Unix ms."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    return f"{now.year:04d}-{now.month:02d}", int(start.timestamp() * 1000), int(start.timestamp() * 1000) + \
        days * 86_400_000


def default_period_ms(interval_ms: int, max_age_ms: int) -> int:
    """How often warming refreshes a feed without a budget: at the check where it would otherwise lapse before
    the check after next (``app/background/warmer.py``), so every ``n`` checks."""
    checks = max(1, math.ceil((max_age_ms - 2.5 * interval_ms) / interval_ms))
    return checks * interval_ms


def longest_period_ms(interval_ms: int, max_age_ms: int) -> int:
    """The longest refresh period with which a value is refreshed, at a check, before it lapses: checks come every
    ``interval_ms`` give or take scheduling, so a value is refreshed when it would lapse before the next check
    (half an interval of slack)."""
    return max(interval_ms, math.floor((max_age_ms - 1.5 * interval_ms) / interval_ms) * interval_ms)


def plan(budget: int, used: int, calls_per_refresh: int, now_ms: int, interval_ms: int,
         max_age_ms: int) -> CreditPlan:
    """The refresh period that keeps this month's use within ``budget``, given ``used`` so far."""
    month, _, end_ms = month_of(now_ms)
    left_ms = max(1, end_ms - now_ms)
    remaining = budget - used
    default = default_period_ms(interval_ms, max_age_ms)
    longest = max(default, longest_period_ms(interval_ms, max_age_ms))
    if calls_per_refresh <= 0:
        return CreditPlan(budget, used, 0, default, used, used <= budget, None, None, month)
    # the period that would spend exactly what is left, in whole checks (none would do once nothing is left)
    wanted = math.ceil(calls_per_refresh * left_ms / remaining / interval_ms) * interval_ms if remaining > 0 else None
    period = min(max(default, wanted if wanted is not None else longest), longest)
    projected = used + math.ceil(calls_per_refresh * left_ms / period)
    fits = projected <= budget
    runs_out = None
    max_age_needed = None
    if not fits:
        runs_out = now_ms + max(0, int(remaining * period / calls_per_refresh))
        if wanted is not None:  # the max age whose longest period is the one wanted
            max_age_needed = int(wanted + 1.5 * interval_ms)
    return CreditPlan(budget, used, calls_per_refresh, period, projected, fits, runs_out, max_age_needed, month)
