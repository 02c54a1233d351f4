"""The provider's quota enforced across instances on several VMs, in Redis.

The same sliding log as the local limiter (see ``app/fetch/rate_limit.py`` for why a log and not a bucket), kept as one
sorted set of call times per window and checked-and-recorded by one Lua script, so concurrent instances cannot
overdraw it. Time is Redis' own clock (``TIME`` inside the script): instances on different VMs never agree
exactly on the time, and the quota must not depend on their clocks.
"""

from __future__ import annotations

import time
import uuid

from app.core.provider_limits import RateLimit
from app.fetch.rate_limit import MARGIN_S, RateLimiter
from app.stores.redis_client import Shared

CHECK_AND_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local margin = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local span = tonumber(ARGV[1 + 2 * i]) + margin
  local allowance = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - span))
  if redis.call('ZCARD', key) >= allowance then
    local kth = redis.call('ZREVRANGE', key, allowance - 1, allowance - 1, 'WITHSCORES')
    local w = tonumber(kth[2]) + span - now
    if w > wait then wait = w end
  end
end
if wait <= 0 then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('PEXPIRE', key, math.ceil((tonumber(ARGV[1 + 2 * i]) + margin) * 1000) + 1000)
  end
end
return tostring(wait)
"""

USAGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('ZCOUNT', key, '(' .. (now - tonumber(ARGV[i])), '+inf')
end
return counts
"""


#: A month's credit count outlives its month long enough for /status to read it on the last day.
MONTH_KEY_TTL_S = 40 * 86400


class RedisRateLimiter(RateLimiter):
    """``RateLimiter``'s interface over Redis; while Redis is unreachable every call raises
    ``SharedStoreUnavailable`` (a 503): no instance can know what the others spent."""

    def __init__(self, shared: Shared, limit: RateLimit, name: str, *, margin_s: float = MARGIN_S) -> None:
        self._setup(limit, name, margin_s)
        self.shared = shared
        self._keys = [f"pyea:ratelimit:{name}:{w.seconds}s" for w in self.windows]
        self._check = shared.script(CHECK_AND_RECORD)
        self._usage = shared.script(USAGE)

    def try_acquire(self, background: bool = False) -> float:
        args: list[object] = [uuid.uuid4().hex, self.margin_s]
        for window in self.windows:
            args += [window.seconds, window.background if background else window.allowed]
        wait = float(self.shared.run(lambda r: self._check(keys=self._keys, args=args, client=r)))
        if wait <= 0:
            key = f"pyea:{self._month_key(time.time())}"
            self.shared.run(lambda r: r.pipeline().incr(key).expire(key, MONTH_KEY_TTL_S).execute())
        return self._counted(wait)

    def month_used(self) -> int:
        return int(self.shared.run(lambda r: r.get(f"pyea:{self._month_key(time.time())}")) or 0)

    def usage(self) -> dict[str, int]:
        counts = self.shared.run(lambda r: self._usage(keys=self._keys, args=[w.seconds for w in self.windows],
                                                       client=r))
        return {f"{w.seconds}s": int(c) for w, c in zip(self.windows, counts, strict=True)}

    def close(self) -> None:
        pass  # the connection pool belongs to the host
