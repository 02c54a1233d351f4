"""The pace warming keeps so a month's credits last the month: pure arithmetic over the calendar month."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.credits import default_period_ms, longest_period_ms, month_of, plan

DECEMBER_1 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
DECEMBER_MS = 31 * 86_400_000
INTERVAL = 30_000


def test_months_are_calendar_months_in_utc():
    name, start, end = month_of(int(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp() * 1000))
    assert name == "2026-12" and start == DECEMBER_1 and end == DECEMBER_1 + DECEMBER_MS
    assert month_of(DECEMBER_1 + DECEMBER_MS)[0] == "2027-01"
    assert month_of(int(datetime(2028, 2, 10, tzinfo=UTC).timestamp() * 1000))[2] - \
        int(datetime(2028, 2, 1, tzinfo=UTC).timestamp() * 1000) == 29 * 86_400_000  # a leap year


def test_a_hundred_feeds_on_ten_thousand_calls_fit_when_values_may_live_ten_minutes():
    credit_plan = plan(10_000, 0, 1, DECEMBER_1, INTERVAL, 600_000)  # 100 feeds: one batched call per refresh
    assert credit_plan.fits and credit_plan.projected <= 10_000 and credit_plan.runs_out_ms is None


def test_the_budget_lengthens_the_refresh_period_as_far_as_the_max_age_allows():
    # Warming's own cadence at a 315 s max age (one spare check) would spend 11 160 calls in December.
    assert default_period_ms(INTERVAL, 315_000) == 240_000
    assert DECEMBER_MS // 240_000 > 10_000
    credit_plan = plan(10_000, 0, 1, DECEMBER_1, INTERVAL, 315_000)
    assert credit_plan.period_ms == 270_000 == longest_period_ms(INTERVAL, 315_000)
    assert credit_plan.fits and credit_plan.projected <= 10_000


def test_without_a_budget_problem_warming_keeps_its_own_cadence():
    credit_plan = plan(2_000_000, 0, 1, DECEMBER_1, INTERVAL, 90_000)
    assert credit_plan.period_ms == default_period_ms(INTERVAL, 90_000) == 30_000 and credit_plan.fits


def test_five_thousand_feeds_cannot_last_the_month_and_the_plan_says_until_when_and_what_would():
    credit_plan = plan(10_000, 0, 50, DECEMBER_1, INTERVAL, 90_000)  # 5 000 feeds, 100 per call
    assert not credit_plan.fits and credit_plan.projected > 10_000
    assert DECEMBER_1 < credit_plan.runs_out_ms < DECEMBER_1 + 86_400_000  # within the first day, at 30 s
    assert credit_plan.max_age_needed_ms is not None
    assert plan(10_000, 0, 50, DECEMBER_1, INTERVAL, credit_plan.max_age_needed_ms).fits


def test_credits_already_spent_count_against_the_rest_of_the_month():
    half = DECEMBER_1 + DECEMBER_MS // 2
    assert plan(10_000, 0, 1, half, INTERVAL, 600_000).fits
    spent = plan(10_000, 9_999, 1, half, INTERVAL, 600_000)
    assert not spent.fits and spent.runs_out_ms <= half + spent.period_ms
    assert plan(10_000, 10_000, 1, half, INTERVAL, 600_000).max_age_needed_ms is None  # nothing would do
