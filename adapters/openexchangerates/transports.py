"""How Open Exchange Rates is asked and how its answers are read.

``/latest.json?base=USD&symbols=EUR,GBP`` answers ``{"timestamp": unix_s, "base": "USD", "rates": {"EUR": …}}``:
many quotes, but for one base only, so a batch of feeds costs one call per distinct base. The app id travels as
``Authorization: Token <id>`` (the documented alternative to ``?app_id=``) so it never appears in a URL.

Errors come as ``{"error": true, "status": 403, "message": "not_allowed", "description": …}``. The framework turns
an error status into a 502 before any adapter code sees the body, so the known causes are recognised afterwards,
from the status and the provider's ``message`` code quoted in that 502, and reworded for the operator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from app.sdk import (
    AdapterError,
    DataProviderError,
    FeedOutcome,
    HttpTransport,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    Sender,
    Success,
    is_number,
    unix_s_ms,
)

#: Bases other than this one need a paid plan (Developer, Enterprise or Unlimited).
FREE_BASE = "USD"
_KEY_SETTING = "OPENEXCHANGERATES_API_KEY (or API_KEY)"
_CODES = ("not_allowed", "access_restricted", "invalid_app_id", "missing_app_id", "invalid_base")


def base_url(config: Mapping[str, Any]) -> str:
    return config["API_ENDPOINT"].rstrip("/")



def _base(params: Params) -> str:
    """Upper-cased again because a symbol override (``data.overrides``) may rewrite it in any case."""
    return str(params["base"]).upper()


def _quote(params: Params) -> str:
    return str(params["quote"]).upper()


def explain(error: AdapterError, base: str) -> AdapterError:
    """The provider's refusal in terms an operator can act on; anything unrecognised is left as it was."""
    status = error.provider_status_code
    code = next((c for c in _CODES if c in error.message), "")
    said = f"HTTP {status} {code}".strip()
    if status == 401 or code in ("invalid_app_id", "missing_app_id"):
        text = f"Open Exchange Rates rejected the app id ({said}): check {_KEY_SETTING}"
    elif code == "not_allowed" and base != FREE_BASE:
        text = (f"Open Exchange Rates refused base '{base}' ({said}): a base other than "
                f"{FREE_BASE} needs a paid plan (Developer, Enterprise or Unlimited); upgrade the app id's "
                f"plan, or ask for base {FREE_BASE}")
    elif code == "invalid_base":
        text = f"Open Exchange Rates does not know base '{base}' ({said}): check base"
    elif code in ("not_allowed", "access_restricted"):
        text = (f"Open Exchange Rates refused the call ({said}): the app id's plan does not allow it, or its "
                f"monthly request quota is used up; {error.message}")
    else:
        return error
    return DataProviderError(text, provider_status_code=status)


class LatestTransport(HttpTransport):
    #: No documented cap on ``symbols``; 100 keeps a call's URL short whatever the mix of bases.
    max_batch_size = 100

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        groups: dict[str, list[Params]] = {}
        for params in params_list:
            groups.setdefault(_base(params), []).append(params)
        return [ProviderRequest(tuple(members), f"{base_url(config)}/latest.json",
                                params={"base": base, "symbols": ",".join(sorted({_quote(p) for p in members}))},
                                headers={"accept": "application/json",
                                         "Authorization": f"Token {config['API_KEY']}"})
                for base, members in sorted(groups.items())]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        body = response.json()
        rates = body.get("rates") if isinstance(body, dict) else None
        if not isinstance(rates, dict):
            raise DataProviderError("Open Exchange Rates /latest.json answer has no rates object",
                                    provider_status_code=response.status_code)
        asked = _base(params_list[0])  # one call per base, so every feed here has this base
        if body.get("base", asked) != asked:
            # Rates for another base than asked would be wrong by a whole exchange rate: never serve them.
            raise DataProviderError(f"Open Exchange Rates answered rates for base '{body.get('base')}', asked for "
                                    f"'{asked}'", provider_status_code=response.status_code)
        stamp = body.get("timestamp")
        indicated = unix_s_ms(stamp)
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            quote = _quote(params)
            value = rates.get(quote)
            if not is_number(value):
                outcomes.append((params, DataProviderError(
                    f"Open Exchange Rates returned no rate for quote '{quote}' in base '{asked}'; check quote",
                    provider_status_code=response.status_code)))
                continue
            outcomes.append((params, Success(value, data={"base": asked, "timestamp": stamp, "rates": {quote: value}},
                                             provider_indicated_ms=indicated)))
        return outcomes

    def fetch(self, params_list: Sequence[Params], config: Mapping[str, Any],
              requester: Sender) -> list[FeedOutcome]:
        """The framework's fetch, with refusals reworded: an error status never reaches ``parse_response``."""
        return [dataclasses.replace(o, outcome=explain(o.outcome, _base(o.params)))
                if isinstance(o.outcome, DataProviderError) and (o.provider_status_code or 0) >= 400 else o
                for o in super().fetch(params_list, config, requester)]
