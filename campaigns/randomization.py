"""The randomized parts of a strategy: the holdout and the exploration draw (numpy, no Django).

Holdout. Every customer gets a uniform number from a keyed hash of (the campaign's secret salt,
the customer's id): random to anyone who does not know the salt, and the same every time the
campaign is proposed again. Within each stratum (lifecycle segment) the ``round(share x size)``
customers with the lowest numbers are held out, so every segment keeps its share exactly (up to
rounding). Customers the campaign held out before (``sticky``) are held out first, whatever
their number: a held-out customer stays held out even when their segment has changed.

Exploration. Among the customers neither held out nor excluded, a seeded generator picks
``count`` at random and gives each an arm drawn uniformly among no coupon and the campaign's
coupons.
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _salt_key(salt: str) -> np.uint64:
    digest = hashlib.blake2b(salt.encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def hash_uniform(ids: np.ndarray, *, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id, fixed by (salt, id): splitmix64 of the keyed id."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around on purpose
        z = np.asarray(ids, dtype=np.int64).view(np.uint64) ^ _salt_key(salt)
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def stratified_holdout(
    *, uniform: np.ndarray, strata: np.ndarray, share: float, sticky: np.ndarray | None = None
) -> np.ndarray:
    """Which customers are held out: per stratum the sticky ones, then the lowest ``uniform``
    until ``round(share x stratum size)`` are (sticky customers beyond that stay held out)."""
    n = uniform.size
    if n == 0 or share <= 0:
        return np.zeros(n, dtype=bool) if sticky is None else sticky.astype(bool).copy()
    sticky = np.zeros(n, dtype=bool) if sticky is None else sticky.astype(bool)
    strata = np.asarray(strata, dtype=np.int64)
    # Order within each stratum: sticky first, then by the uniform number.
    order = np.lexsort((uniform, ~sticky, strata))
    sorted_strata = strata[order]
    starts = np.flatnonzero(np.r_[True, sorted_strata[1:] != sorted_strata[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    target = np.repeat(np.floor(share * sizes + 0.5).astype(np.int64), sizes)
    held = np.empty(n, dtype=bool)
    held[order] = (rank < target) | sticky[order]
    return held


def exploration_draw(
    *, candidates: np.ndarray, count: int, n_arms: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of the candidate rows (indices, in random order) and a uniform arm for each
    (0 = no coupon .. n_arms - 1)."""
    pool = np.flatnonzero(candidates)
    count = int(min(max(count, 0), pool.size))
    rows = rng.permutation(pool)[:count]
    arms = rng.integers(0, n_arms, size=count, dtype=np.int64)
    return rows, arms


def affordable_prefix(
    *,
    spend: np.ndarray,
    arms: np.ndarray,
    budget: float,
    caps: list[int | None],
) -> int:
    """How many of the drawn exploration rows fit, in draw order, within the budget (expected
    spend) and the caps (``caps[j]`` for arm j + 1; None = no cap). The draw order is random,
    so the kept rows are still a random sample."""
    if spend.size == 0:
        return 0
    fits = np.cumsum(spend) <= budget + 1e-9
    for position, cap in enumerate(caps):
        if cap is not None:
            fits &= np.cumsum(arms == position + 1) <= cap
    broken = np.flatnonzero(~fits)
    return int(broken[0]) if broken.size else int(spend.size)
