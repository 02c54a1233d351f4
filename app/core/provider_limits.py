"""Provider rate limits from ``limits.json`` (v2's format), resolved to the quota pyea must respect.

Resolution happens at startup so an unknown provider or tier stops the process with the valid names listed,
instead of silently running unlimited and burning through an operator's credits.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from app.core.setting_specs import Problem
from app.core.settings import Settings


@dataclass(frozen=True)
class RateLimit:
    """Outbound quota; ``per_minute`` is what binds when windows disagree after derivation."""

    per_second: float | None
    per_minute: float
    per_hour: float | None
    source: str
    provider: str = ""  # whose quota: adapters naming the same provider share one
    #: Provider calls a calendar month allows (the tier's ``monthlyCredits``, or RATE_LIMIT_MONTHLY_BUDGET when
    #: lower); None when neither is known.
    monthly_budget: int | None = None
    budget_source: str = ""


def parse_limits(doc: Any, source: str) -> tuple[dict[str, Any], list[Problem]]:
    """The providers of a ``limits.json`` document (parsed JSON) whose entries are sound, and a problem for each
    broken one; ``source`` names the file in the problems."""
    if not isinstance(doc, dict):
        return {}, [Problem("limits.json", source, "a JSON object keyed by provider")]
    usable: dict[str, Any] = {}
    problems: list[Problem] = []
    for provider, sections in doc.items():
        found = _provider_problems(provider, sections)
        if found:
            problems += found  # a provider with a broken entry is left out: its problems stop the start
        else:
            usable[provider] = sections
    return usable, problems


_FIELDS = {"http": ("rateLimit1s", "rateLimit1m", "rateLimit1h", "monthlyCredits"),
           "ws": ("connections", "subscriptions")}


def _provider_problems(provider: str, sections: Any) -> list[Problem]:
    """``{http: {tier: {rateLimit1s, rateLimit1m, rateLimit1h}}, ws: {tier: {connections, subscriptions}}}``:
    every limit a positive number, so a typo cannot silently lift one."""
    if not isinstance(sections, dict):
        return [Problem(f"limits.json {provider}", _shown(sections), "an object with http and ws tiers")]
    problems: list[Problem] = []
    for section, tiers in sections.items():
        if section not in _FIELDS or not isinstance(tiers, dict):
            problems.append(Problem(f"limits.json {provider}.{section}", _shown(tiers),
                                    "http or ws, each an object of tiers"))
            continue
        for tier, values in tiers.items():
            where = f"limits.json {provider}.{section}.{tier}"
            if not isinstance(values, dict):
                problems.append(Problem(where, _shown(values), "an object of limits"))
                continue
            for key, value in values.items():
                if key == "note":
                    continue
                if key not in _FIELDS[section]:
                    problems.append(Problem(f"{where}.{key}", _shown(value), "one of " + ", ".join(_FIELDS[section])))
                elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    problems.append(Problem(f"{where}.{key}", _shown(value), "a positive number"))
    return problems


def per_minute(tier: dict[str, Any]) -> float | None:
    """v2's derivation: the minute window, else the hour's sixtieth, else sixty seconds' worth."""
    if tier.get("rateLimit1m"):
        return float(tier["rateLimit1m"])
    if tier.get("rateLimit1h"):
        return tier["rateLimit1h"] / 60
    if tier.get("rateLimit1s"):
        return tier["rateLimit1s"] * 60.0
    return None


def resolve_rate_limit(settings: Settings, adapter_name: str, doc: dict[str, Any], prefix: str = "",
                       default_tier: str | None = None) -> tuple[RateLimit | None, list[Problem]]:
    """``prefix`` names where the settings came from (``COINMARKETCAP_``), for the problems reported;
    ``default_tier`` is the adapter's guess from its own settings when ``RATE_LIMIT_API_TIER`` is unset."""
    limit, problems = _resolve_quota(settings, adapter_name, doc, prefix, default_tier)
    budget = settings.RATE_LIMIT_MONTHLY_BUDGET
    if limit is None:
        if budget and settings.RATE_LIMIT_ENABLED and not problems:
            problems = [Problem(prefix + "RATE_LIMIT_MONTHLY_BUDGET", str(budget),
                                "unset, or set with a rate limit to count calls against (a limits.json tier for "
                                "this provider, or RATE_LIMIT_CAPACITY)")]
        return limit, problems
    if budget and (limit.monthly_budget is None or budget <= limit.monthly_budget):
        limit = dataclasses.replace(limit, monthly_budget=budget, budget_source="RATE_LIMIT_MONTHLY_BUDGET")
    return limit, problems


def _resolve_quota(settings: Settings, adapter_name: str, doc: dict[str, Any], prefix: str,
                   default_tier: str | None) -> tuple[RateLimit | None, list[Problem]]:
    if not settings.RATE_LIMIT_ENABLED:
        return None, []
    provider = (settings.RATE_LIMIT_API_PROVIDER or adapter_name).lower()
    if settings.RATE_LIMIT_CAPACITY_MINUTE or settings.RATE_LIMIT_CAPACITY or settings.RATE_LIMIT_CAPACITY_SECOND:
        second = settings.RATE_LIMIT_CAPACITY_SECOND
        minute = settings.RATE_LIMIT_CAPACITY_MINUTE or settings.RATE_LIMIT_CAPACITY or second * 60
        return RateLimit(second, float(minute), None, "RATE_LIMIT_CAPACITY settings", provider), []
    if provider not in doc:
        if not settings.RATE_LIMIT_API_PROVIDER:
            return None, []  # no published limits for this adapter: nothing to enforce
        return None, [Problem(prefix + "RATE_LIMIT_API_PROVIDER", settings.RATE_LIMIT_API_PROVIDER,
                              "a provider in limits.json: " + ", ".join(sorted(doc)))]
    tiers, tier_name = _tiers(settings, doc, provider, "http", default_tier)
    if not tiers:
        return None, []
    if tier_name not in tiers:
        return None, [Problem(prefix + "RATE_LIMIT_API_TIER", settings.RATE_LIMIT_API_TIER,
                              f"a {provider} tier in limits.json: " + ", ".join(tiers))]
    tier = tiers[tier_name]
    minute = per_minute(tier)
    if minute is None:
        return None, []  # the tier publishes no limit (e.g. "unlimited")
    source = f"limits.json {provider}/{tier_name}"
    monthly = tier.get("monthlyCredits")
    return RateLimit(tier.get("rateLimit1s"), minute, tier.get("rateLimit1h"), source, provider,
                     int(monthly) if monthly else None, source if monthly else ""), []


@dataclass(frozen=True)
class WsLimits:
    """A provider's websocket limits: connections at once, and subscriptions per connection (None: no limit)."""

    connections: int | None = None
    subscriptions: int | None = None


def resolve_ws_limits(settings: Settings, adapter_name: str, doc: dict[str, Any], prefix: str = "",
                      ) -> tuple[WsLimits, list[Problem]]:
    """``limits.json`` ``<provider>.ws.<tier>`` (the ``RATE_LIMIT_API_TIER`` tier, else the first one)."""
    provider = (settings.RATE_LIMIT_API_PROVIDER or adapter_name).lower()
    tiers, tier_name = _tiers(settings, doc, provider, "ws")
    if not tiers:
        return WsLimits(), []
    tier = tiers.get(tier_name, next(iter(tiers.values())))
    values, problems = {}, []
    for field_name in ("connections", "subscriptions"):
        value = tier.get(field_name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(Problem(f"limits.json {provider}.ws.{tier_name}.{field_name}", str(value),
                                    "a whole number >= 1"))
            value = None
        values[field_name] = value
    return WsLimits(**values), problems


def _tiers(settings: Settings, doc: dict[str, Any], provider: str, section: str,
           default_tier: str | None = None) -> tuple[dict[str, Any], str]:
    """The provider's tiers in ``section`` (``http`` or ``ws``), by lower-case name, and the one chosen:
    ``RATE_LIMIT_API_TIER``, else the adapter's ``default_tier`` when the provider lists it, else the first."""
    tiers = {name.lower(): tier for name, tier in doc.get(provider, {}).get(section, {}).items()}
    guess = default_tier.lower() if default_tier and default_tier.lower() in tiers else None
    return tiers, (settings.RATE_LIMIT_API_TIER or guess or next(iter(tiers), "")).lower()


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
