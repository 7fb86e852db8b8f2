"""The optimizer: at most one coupon (or none) per customer, under a budget and per-coupon caps.

``arm_values`` turns the model's predictions into what each (customer, arm) is worth: with
p_a = P(convert | arm a), gross_a the expected order value before the discount (recovered from
the predicted net order value, ``economics.gross_order_value``), cost_a the coupon's expected
cost given a conversion (``economics.expected_coupon_cost``) and m the margin rate,

- spend_a = p_a * cost_a (the expected coupon spend),
- profit_a = p_a * (gross_a * m - cost_a) - p_0 * gross_0 * m (incremental profit),
- revenue_a = p_a * (gross_a - discount_a) - p_0 * gross_0 (incremental revenue, net of the
  discount; the coupon's fixed cost is a cost, not lost revenue),
- conversions_a = p_a - p_0,

column 0 (no coupon) all zeros; the campaign goal picks which of them is the ``objective``.

``allocate`` solves, for x[i, a] in {0, 1}:

    maximize sum_ia objective_ia x_ia   s.t.  sum_a x_ia <= 1,  sum_ia spend_ia x_ia <= budget,
                                               sum_i x_ia <= cap_a

by Lagrangian relaxation of the coupling constraints. For a budget multiplier lam and cap
multipliers mu_a every customer decouples: take the arm with the largest positive
objective_ia - lam * spend_ia - mu_a, or none.

- The budget multiplier, for given cap prices: the spend of that choice falls as lam rises, so
  lam is found by a bracketing search (regula falsi with the Illinois fix, bisection steps as a
  safeguard) in which customers whose choice is the same at both ends of the bracket are
  settled and drop out: after a few steps only the customers switching near the optimum are
  re-scored. Candidates are kept in descending order of their best objective per unit of spend,
  so scoring at lam touches only the prefix that can still take a coupon.
- The cap prices, for given lam: each capped arm's mu_a is its clearing price, the (cap+1)-th
  largest margin of the arm over each customer's best alternative (none included), updated arm
  by arm until no price moves (Gauss-Seidel; an ascending auction for unit-demand customers).
- Both: Phi(lam) = the budget multiplier at the cap prices cleared at lam; the optimum is its
  fixed point, found by fixed-point and secant steps, then regula falsi once bracketed.
- A final pass makes the answer feasible and uses what is left: over-cap arms keep their best
  customers; a choice over the budget by rounding (the unconstrained one, for a budget an ulp
  under its spend) gives up the single drop or move to a cheaper arm that loses least;
  leftover budget buys the best remaining upgrades in order of objective per unit of
  spend (the greedy of the LP relaxation, taking what fits and skipping what does not); full
  capped arms trade their weakest members for stronger outsiders; and, for campaigns of up to
  tens of thousands of treated customers, a few knapsack insertions move a customer whose
  upgrade does not fit by dropping the cheapest treated customers (or a member of a full arm)
  to pay for it. The budget and the caps are never exceeded; no arm with objective <= 0 is ever
  chosen; a budget at or above the unconstrained optimum's spend returns that optimum.

The LP relaxation bounds the result from above; on campaign-sized instances the gap is a few
parts per million (tests: <= 0.5 % on random instances of thousands of customers). The integer
optimum never falls as the budget grows; this heuristic's answer can, by a fraction of one
customer's objective, where the rounding of the LP's few fractional customers changes (seen on
instances of a few hundred customers, never by more than one customer). The frontier carries
the previous budget's answer forward in that case, so its curve never falls.

Everything runs on arm-major [arms, candidates] float64 arrays of the eligible customers that
have at least one positive arm: a small number of numpy passes per multiplier step, no
per-customer Python. ``allocate_exact`` solves the same problem's LP relaxation with HiGHS
(``scipy.optimize.linprog``): the reference the tests and the benchmark compare against.

``efficient_frontier`` traces objective against budget from 0 to the unconstrained optimum's
spend (one preparation of the candidates, each budget warm-started from the multipliers of the
previous ones), beside two baselines at equal spend: the best single coupon for random
customers, and random coupons for random customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modeling.economics import CouponTerms, expected_coupon_cost, gross_order_value

__all__ = [
    "GOALS",
    "Allocation",
    "ArmValues",
    "Frontier",
    "FrontierCurve",
    "allocate",
    "allocate_exact",
    "arm_values",
    "efficient_frontier",
]

GOALS = ("profit", "revenue", "conversions")
CONTROL_ARM = "control"
# The budget search stops once this few customers switch arms inside the bracket (or the bracket
# is 1e-12 wide): the fill then orders exactly those by objective per spend, as the LP does.
_SETTLED_SWITCHERS = 1
_MAX_SEARCH_STEPS = 80
_MAX_PRICE_ROUNDS = 30  # steps towards the fixed point of budget multiplier and cap prices
_MAX_AUCTION_SWEEPS = 50  # Gauss-Seidel sweeps of the cap prices (3-5 in practice)
_MAX_FILL_ROUNDS = 200  # take-what-fits rounds of the greedy fill, each skipping one misfit
_MAX_INSERTIONS = 4  # each one a sort of the treated customers
_INSERTION_MOVERS = 1024  # per arm, the customers an insertion tries to move
# Above this many treated customers one insertion changes the objective by ~1e-5 of it, while
# its sorts cost ~50 ms at 200k treated: skipped unless one customer is a visible share.
_INSERTION_MAX_TREATED = 50_000


# ---------------------------------------------------------------------------------------------
# What each (customer, arm) is worth
# ---------------------------------------------------------------------------------------------
@dataclass
class ArmValues:
    """Per customer x arm, column 0 = no coupon (all zeros). ``objective`` is the array of the
    campaign goal (the same object as ``profit``, ``revenue`` or ``conversions``)."""

    objective: np.ndarray
    spend: np.ndarray
    profit: np.ndarray
    revenue: np.ndarray
    conversions: np.ndarray
    arms: tuple[str, ...]

    def __post_init__(self) -> None:
        shape = np.shape(self.objective)
        if len(shape) != 2 or shape[1] < 1:
            raise ValueError(f"objective must be [customers, arms], got shape {shape}")
        for name in ("spend", "profit", "revenue", "conversions"):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name} has shape {np.shape(getattr(self, name))}, not {shape}")
        self.arms = tuple(self.arms)
        if len(self.arms) != shape[1]:
            raise ValueError(f"{len(self.arms)} arm names for {shape[1]} arms")

    @property
    def n_customers(self) -> int:
        return int(self.objective.shape[0])

    @property
    def n_arms(self) -> int:
        return int(self.objective.shape[1])


def arm_values(
    p_convert: np.ndarray,
    order_value: np.ndarray | None,
    coupons: Sequence[CouponTerms],
    *,
    margin_rate: float,
    goal: str = "profit",
    average_order_value: float | None = None,
    arms: Sequence[str] | None = None,
) -> ArmValues:
    """``ArmValues`` from predictions: ``p_convert`` [n, A] (column 0 control, column a the
    coupon ``coupons[a - 1]``) and ``order_value`` [n, A], the predicted logged (net) order value
    given conversion per arm (None: ``average_order_value`` for every customer and arm).

    Computed one arm at a time in float64, so the temporaries are a few columns, not [n, A]."""
    if goal not in GOALS:
        raise ValueError(f"unknown goal {goal!r}; expected one of {GOALS}")
    if not np.isfinite(margin_rate) or margin_rate < 0:
        raise ValueError(f"margin_rate must be a finite number >= 0, got {margin_rate!r}")
    p = np.asarray(p_convert)
    coupons = tuple(coupons)
    if p.ndim != 2 or p.shape[1] != len(coupons) + 1:
        raise ValueError(
            f"p_convert must be [customers, 1 + {len(coupons)} coupons], got shape {p.shape}"
        )
    n, n_arms = p.shape
    if order_value is None:
        if average_order_value is None:
            raise ValueError("give order_value or average_order_value")
        net_columns = [np.full(1, float(average_order_value))] * n_arms
    else:
        ov = np.asarray(order_value)
        if ov.shape != p.shape:
            raise ValueError(f"order_value has shape {ov.shape}, p_convert {p.shape}")
        net_columns = [ov[:, a] for a in range(n_arms)]
    names = (CONTROL_ARM, *(c.code for c in coupons)) if arms is None else tuple(arms)
    if len(names) != n_arms:
        raise ValueError(f"{len(names)} arm names for {n_arms} arms")

    out = {k: np.zeros((n, n_arms)) for k in ("spend", "profit", "revenue", "conversions")}
    p0 = p[:, 0].astype(np.float64)
    base_revenue = p0 * np.maximum(net_columns[0].astype(np.float64), 0.0)  # no discount
    base_profit = base_revenue * margin_rate
    for a, terms in enumerate(coupons, start=1):
        pa = p[:, a].astype(np.float64)
        gross = gross_order_value(terms, net_columns[a])
        cost = expected_coupon_cost(terms, gross)
        out["spend"][:, a] = pa * cost
        out["profit"][:, a] = pa * (gross * margin_rate - cost) - base_profit
        out["revenue"][:, a] = pa * (gross - (cost - terms.fixed_cost)) - base_revenue
        out["conversions"][:, a] = pa - p0
    return ArmValues(objective=out[goal], arms=names, **out)


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------
@dataclass
class Allocation:
    choice: np.ndarray  # int16 [n]: 0 = no coupon, a = arm a
    objective: float
    profit: float
    revenue: float
    conversions: float
    spend: float
    counts: np.ndarray  # int64 [A]: customers per arm, counts[0] = untreated
    multiplier: float  # the budget's Lagrange multiplier (0 when the budget does not bind)
    budget: float | None

    @property
    def roi(self) -> float:
        """Incremental profit per unit of coupon spend (nan without spend)."""
        return self.profit / self.spend if self.spend else float("nan")


_TOTALS = ("objective", "profit", "revenue", "conversions", "spend")


def _totals(
    values: ArmValues, choice: np.ndarray, names: Sequence[str] = _TOTALS
) -> dict[str, float]:
    """Sums over the treated customers of the chosen arm's values (always in the same order,
    so the reported spend is exactly the one checked against the budget)."""
    treated = np.flatnonzero(choice)
    arm = choice[treated]
    return {name: float(getattr(values, name)[treated, arm].sum()) for name in names}


def _allocation(
    values: ArmValues, choice: np.ndarray, *, multiplier: float, budget: float | None
) -> Allocation:
    return Allocation(
        choice=choice,
        counts=np.bincount(choice, minlength=values.n_arms).astype(np.int64),
        multiplier=float(multiplier),
        budget=None if budget is None else float(budget),
        **_totals(values, choice),
    )


def _caps_array(caps: Sequence[int | None] | np.ndarray | None, n_coupons: int) -> np.ndarray:
    """Caps per coupon arm as floats, inf = no cap (None, NaN or inf in the input)."""
    if caps is None:
        return np.full(n_coupons, np.inf)
    out = np.array([np.inf if c is None else float(c) for c in caps], dtype=np.float64)
    if out.shape != (n_coupons,):
        raise ValueError(f"caps has {out.size} entries for {n_coupons} coupon arms")
    out[np.isnan(out)] = np.inf
    if np.any(out < 0):
        raise ValueError("caps must be >= 0")
    return np.floor(out)


def _check_budget(budget: float | None) -> float | None:
    if budget is None:
        return None
    budget = float(budget)
    if not budget >= 0:  # also NaN
        raise ValueError(f"budget must be >= 0 or None, got {budget!r}")
    return budget


# ---------------------------------------------------------------------------------------------
# The Lagrangian solver
# ---------------------------------------------------------------------------------------------
class _Candidates:
    """The eligible customers with a positive coupon arm, arm-major, and the solver on them.

    ``value[k]`` / ``cost[k]``: objective / spend of coupon arm k + 1 per candidate, value -inf
    where the arm is not positive (never chosen)."""

    def __init__(
        self,
        values: ArmValues,
        caps: Sequence[int | None] | np.ndarray | None,
        eligible: np.ndarray | None,
    ) -> None:
        self.values = values
        n, n_arms = values.objective.shape
        self.n_coupons = k_arms = n_arms - 1
        self.caps = _caps_array(caps, k_arms)
        objective = values.objective
        candidate = np.zeros(n, dtype=bool)
        for k in range(1, n_arms):
            candidate |= objective[:, k] > 0  # NaN is not positive
        if eligible is not None:
            eligible = np.asarray(eligible, dtype=bool)
            if eligible.shape != (n,):
                raise ValueError(f"eligible has shape {eligible.shape}, expected ({n},)")
            candidate &= eligible
        rows = np.flatnonzero(candidate)
        value = np.ascontiguousarray(objective[rows][:, 1:].T)
        cost = np.ascontiguousarray(values.spend[rows][:, 1:].T)
        # Candidates go in descending order of their best objective per unit of spend (a free
        # positive arm: inf): at multiplier lam only the prefix whose best ratio is above lam
        # can take a coupon, so scoring at lam touches that prefix only.
        best_ratio = np.full(rows.size, -np.inf)
        best_cost = np.zeros(rows.size)
        ratio = np.empty(rows.size)
        max_ratio = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(k_arms):
                off = ~(value[k] > 0)
                value[k][off] = -np.inf
                cost[k][off] = 0.0
                if not np.all(np.isfinite(cost[k]) & (cost[k] >= 0)):
                    raise ValueError(
                        "spend must be finite and >= 0 wherever the objective is positive"
                    )
                np.divide(value[k], cost[k], out=ratio)  # inf when free, -inf when off
                np.copyto(best_cost, cost[k], where=ratio > best_ratio)
                np.maximum(best_ratio, ratio, out=best_ratio)
                priced = ratio[np.isfinite(ratio)]
                max_ratio = max(max_ratio, float(priced.max(initial=0.0)))
        order = np.argsort(-best_ratio)
        self.rows = rows[order]
        self.best_ratio = best_ratio[order]
        self._descending_key = -self.best_ratio  # ascending, for searchsorted
        self._best_ratio_spend = np.cumsum(best_cost[order])
        self.value = np.take(value, order, axis=1)
        self.cost = np.take(cost, order, axis=1)
        self.value[self.caps == 0] = -np.inf  # an arm capped at 0 is never chosen
        del value, cost
        self.max_ratio = max_ratio  # the largest objective per spend of a priced arm
        self.max_value = float(np.max(self.value, initial=0.0))
        self._unconstrained: np.ndarray | None = None
        self.multipliers: tuple[float, np.ndarray] | None = None

    def _prefix(self, lam: float) -> int:
        """How many candidates (a prefix) have an arm with value - lam * cost > 0."""
        return int(np.searchsorted(self._descending_key, -lam, side="left"))

    @property
    def m(self) -> int:
        return int(self.rows.size)

    # -- scoring --------------------------------------------------------------------------------
    def _choose(
        self, lam: float, mu: np.ndarray, rows: np.ndarray | slice | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate (or per ``rows``) the arm maximizing value - lam * cost - mu (0 when
        none is positive; the first arm on ties) and its cost."""
        if rows is None:
            size = self._prefix(lam)
            arg, chosen_cost = self._choose(lam, mu, np.s_[:size])
            if size == self.m:
                return arg, chosen_cost
            full_arg = np.zeros(self.m, dtype=np.int16)
            full_cost = np.zeros(self.m)
            full_arg[:size], full_cost[:size] = arg, chosen_cost
            return full_arg, full_cost
        value, cost = self.value[:, rows], self.cost[:, rows]
        size = value.shape[1]
        best = np.zeros(size)
        arg = np.zeros(size, dtype=np.int16)
        chosen_cost = np.zeros(size)
        score = np.empty(size)
        better = np.empty(size, dtype=bool)
        for k in range(self.n_coupons):
            if lam:
                np.multiply(cost[k], lam, out=score)
                np.subtract(value[k], score, out=score)
            else:
                np.copyto(score, value[k])
            if mu[k]:
                score -= mu[k]
            np.greater(score, best, out=better)
            np.maximum(best, score, out=best)
            np.copyto(arg, k + 1, where=better)
            np.copyto(chosen_cost, cost[k], where=better)
        return arg, chosen_cost

    def _gather(self, table: np.ndarray, arg: np.ndarray) -> np.ndarray:
        """table[arg - 1, candidate], 0 where arg == 0."""
        out = np.zeros(arg.size)
        for k in range(self.n_coupons):
            np.copyto(out, table[k], where=arg == k + 1)
        return out

    # -- the budget multiplier -------------------------------------------------------------------
    def _ratio_guess(self, budget: float) -> float:
        """Where the budget runs out when customers take their best-ratio arm in order of that
        ratio (the candidates' order): a starting point for the search."""
        reach = np.searchsorted(self._best_ratio_spend, budget, side="right")
        return float(self.best_ratio[min(reach, self.m - 1)])

    def _budget_multiplier(
        self, budget: float, mu: np.ndarray, guess: float | None, reach: float = 0.01
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """(lam, arg, cost): the Lagrangian choice at a multiplier lam whose spend is within the
        budget, with lam as small as the search resolves. ``guess``: where to start (else the
        ratio guess); ``reach``: how far from it (relative) lam is expected, the first step."""
        top = self.max_ratio * (1.0 + 1e-6) + 1e-300  # every priced arm scores < 0 above it
        floor = top * 1e-12
        if guess is None or not 0 < guess < top:
            arg, cost = self._choose(0.0, mu)
            # Within rounding of the budget counts as fitting: a sum over the candidates in
            # their order can exceed the same spend summed per customer by an ulp. ``solve``
            # then checks the optimum exactly, and _finish brings any answer within.
            if cost.sum() <= budget * (1.0 + 1e-12):
                return 0.0, arg, cost
            guess, step = self._ratio_guess(budget), 1.25
        else:
            step = 1.0 + min(max(reach, 0.002), 1.0)  # a warm start: the multiplier moved little
        # Bracket with full evaluations, the step growing geometrically from the guess.
        lam = min(max(guess, floor), top)
        arg_lo = cost_lo = arg_hi = cost_hi = None
        lo, hi, spend_lo, spend_hi = 0.0, top, 0.0, 0.0
        for _ in range(200):
            arg, cost = self._choose(lam, mu)
            spend = cost.sum()
            if spend > budget:
                if lam >= top:
                    raise AssertionError("no multiplier brings the spend within the budget")
                lo, arg_lo, cost_lo, spend_lo = lam, arg, cost, spend
                if arg_hi is not None:
                    break
                lam = min(lam * step, top)
            else:
                hi, arg_hi, cost_hi, spend_hi = lam, arg, cost, spend
                if arg_lo is not None:
                    break
                if lam <= floor:
                    arg_lo, cost_lo = self._choose(0.0, mu)
                    lo, spend_lo = 0.0, cost_lo.sum()
                    if spend_lo <= budget:
                        return 0.0, arg_lo, cost_lo
                    break
                lam = max(lam / step, floor)
            step *= step
        assert arg_lo is not None and cost_lo is not None
        assert arg_hi is not None and cost_hi is not None
        arg_hi, cost_hi = arg_hi.copy(), cost_hi.copy()

        active = np.flatnonzero(arg_lo != arg_hi)
        settled = spend_hi - cost_hi[active].sum()
        c_lo, c_hi = cost_lo[active], cost_hi[active]
        f_lo, f_hi = spend_lo - budget, spend_hi - budget
        side = 0
        width = hi - lo
        for iteration in range(_MAX_SEARCH_STEPS):
            if active.size <= _SETTLED_SWITCHERS or hi - lo <= 1e-12 * hi:
                break
            if iteration % 3 == 2 and hi - lo > 0.5 * width:
                lam = np.sqrt(lo * hi) if lo > 0 and hi > 4 * lo else 0.5 * (lo + hi)
                side = 0
            else:
                lam = lo + (hi - lo) * f_lo / (f_lo - f_hi)
                lam = min(max(lam, lo + 1e-3 * (hi - lo)), hi - 1e-3 * (hi - lo))
            if iteration % 3 == 2:
                width = hi - lo
            arg, cost = self._choose(lam, mu, active)
            spend = settled + cost.sum()
            if spend > budget:
                lo, f_lo, c_lo = lam, spend - budget, cost
                arg_lo[active] = arg
                if side < 0:
                    f_hi *= 0.5
                side = -1
            else:
                hi, f_hi, c_hi = lam, spend - budget, cost
                arg_hi[active] = arg
                cost_hi[active] = cost
                if side > 0:
                    f_lo *= 0.5
                side = 1
            moving = arg_lo[active] != arg_hi[active]
            settled += c_hi[~moving].sum()
            active, c_lo, c_hi = active[moving], c_lo[moving], c_hi[moving]
        return hi, arg_hi, cost_hi

    # -- the cap prices --------------------------------------------------------------------------
    def _cap_prices(self, lam: float, mu: np.ndarray) -> np.ndarray:
        """Clearing prices of the capped arms at the budget multiplier ``lam``: arm by arm, the
        price at which no more customers than the cap prefer the arm to their best
        alternative (none included), until no price moves."""
        mu = mu.copy()
        capped = self._binding_caps()
        if not capped:
            return mu
        size = self._prefix(lam)  # the others prefer no coupon to every arm
        score = self.value[:, :size] - lam * self.cost[:, :size]
        # Only customers who prefer arm k to no coupon can be keen on it: each capped arm
        # works on those (often a small share), with every arm's score there.
        keen_rows = {k: np.flatnonzero(score[k] > 0) for k in capped}
        scores = {k: score[:, rows] for k, rows in keen_rows.items()}
        del score
        for _ in range(_MAX_AUCTION_SWEEPS):
            moved = 0.0
            for k in capped:
                mine = scores[k]
                other = np.zeros(mine.shape[1])
                shifted = np.empty(mine.shape[1])
                for j in range(self.n_coupons):
                    if j != k:
                        np.subtract(mine[j], mu[j], out=shifted)
                        np.maximum(other, shifted, out=other)
                margin = np.subtract(mine[k], other, out=other)
                keen = margin[margin > 0]
                cap = int(self.caps[k])
                price = 0.0
                if keen.size > cap:
                    price = float(np.partition(keen, keen.size - cap - 1)[keen.size - cap - 1])
                if price != mu[k]:
                    moved = max(moved, abs(price - mu[k]) / max(abs(price), abs(mu[k])))
                    mu[k] = price
            if moved <= 1e-7:
                break
        return mu

    # -- the whole solve -------------------------------------------------------------------------
    def _lagrangian(
        self, budget: float | None, warm: tuple[float, np.ndarray] | None = None
    ) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Lagrangian choices (lam, arg, cost) near the optimal multipliers, to be finished.

        Without a budget: the cap prices at lam = 0. With one: Phi(lam) = the budget
        multiplier for the cap prices cleared at lam; the optimum is its fixed point, the root
        of h(lam) = Phi(lam) - lam (h(0) >= 0; more budget pressure lowers the cap prices, so
        Phi rises more slowly than lam). Fixed-point steps from Phi without caps approach it,
        secant steps speed them up, and once steps have landed on both sides the root is
        bracketed and found by regula falsi with bisection safeguards. Each search's choice
        is within the budget; the caps may be off by the customers the last price change
        moved, which ``_finish`` repairs. With few customers Phi is a step function without an
        exact fixed point: the choices on both sides of the jump are returned. The multipliers
        reached are kept in ``self.multipliers`` (a warm start for a nearby budget)."""
        mu = np.zeros(self.n_coupons)
        if budget is None:
            mu = self._cap_prices(0.0, mu)
            arg, cost = self._choose(0.0, mu)
            return [(0.0, arg, cost)]
        if warm is not None:  # multipliers of a nearby budget: fewer rounds from there
            mu = warm[1].copy()
        lam, arg, cost = self._budget_multiplier(budget, mu, None if warm is None else warm[0])
        self.multipliers = (lam, mu)
        if not self._binding_caps():
            return [(lam, arg, cost)]
        lo, h_lo, below = None, 0.0, None
        hi, h_hi, above = None, 0.0, None
        previous: tuple[float, float] | None = None
        for step in range(_MAX_PRICE_ROUNDS):
            mu = self._cap_prices(lam, mu)
            reach = abs(previous[1]) / lam if previous is not None and lam > 0 else 0.01
            found, arg, cost = self._budget_multiplier(budget, mu, lam if lam > 0 else None, reach)
            change = found - lam
            self.multipliers = (found, mu)
            if abs(change) <= 1e-3 * max(found, lam):
                return [(found, arg, cost)]
            if change > 0:
                lo, h_lo, below = lam, change, (found, arg, cost)
            else:
                hi, h_hi, above = lam, change, (found, arg, cost)
            if lo is not None and hi is not None:
                if abs(hi - lo) <= 1e-4 * max(hi, lo):
                    break
                nxt = lo + (hi - lo) * h_lo / (h_lo - h_hi)
                margin = 0.01 * abs(hi - lo)
                if step % 3 == 2 or not min(lo, hi) + margin < nxt < max(lo, hi) - margin:
                    nxt = 0.5 * (lo + hi)
            else:
                # One side known: Phi(lam) is the next step; a secant step may go further, as
                # long as it stays on the same side of lam as Phi(lam).
                nxt = found
                if previous is not None and change != previous[1]:
                    secant = lam - change * (lam - previous[0]) / (change - previous[1])
                    if np.isfinite(secant) and secant >= 0 and (secant - lam) * change > 0:
                        nxt = secant
            previous = (lam, change)
            lam = nxt
        return [choice for choice in (below, above) if choice is not None]

    def _binding_caps(self) -> list[int]:
        return [k for k in range(self.n_coupons) if self.caps[k] < self.m]

    def unconstrained(self) -> np.ndarray:
        """The choice without a budget (caps only), computed once."""
        if self._unconstrained is None:
            ((_, arg, cost),) = self._lagrangian(None)
            self._unconstrained = self._finish(None, 0.0, arg, cost)
        return self._unconstrained

    def solve(self, budget: float | None, *, warm: bool = False) -> Allocation:
        """The allocation at ``budget``; ``warm``: start from the multipliers of the previous
        solve (the frontier's budgets are close to each other). A budget that the unconstrained
        optimum's spend fits in returns that optimum; it is only computed when the budget
        search ends at multiplier 0 (or was computed already), which is where that can be."""
        budget = _check_budget(budget)
        if budget is None:
            return _allocation(self.values, self.unconstrained().copy(), multiplier=0, budget=None)
        choices = None
        if self._unconstrained is None:
            choices = self._lagrangian(budget, self.multipliers if warm else None)
        if choices is None or all(lam == 0 for lam, _, _ in choices):
            unconstrained = self.unconstrained()
            if _totals(self.values, unconstrained, ("spend",))["spend"] <= budget:
                return _allocation(self.values, unconstrained.copy(), multiplier=0, budget=budget)
        if choices is None:
            choices = self._lagrangian(budget, self.multipliers if warm else None)
        best = None
        for lam, arg, cost in choices:
            allocation = _allocation(
                self.values, self._finish(budget, lam, arg, cost), multiplier=lam, budget=budget
            )
            if best is None or allocation.objective > best.objective:
                best = allocation
        assert best is not None
        return best

    # -- feasibility and the greedy fill ------------------------------------------------------
    def _finish(
        self, budget: float | None, lam: float, arg: np.ndarray, cost: np.ndarray
    ) -> np.ndarray:
        arg, cost = arg.copy(), cost.copy()
        counts = np.bincount(arg, minlength=self.n_coupons + 1)[1:]
        for k in np.flatnonzero(counts > self.caps):
            members = np.flatnonzero(arg == k + 1)
            score = self.value[k, members] - lam * self.cost[k, members]
            drop = members[np.argsort(-score, kind="stable")[int(self.caps[k]) :]]
            arg[drop] = 0
            cost[drop] = 0.0
        if budget is not None:
            self._within_budget(cost.sum() - budget, arg, cost)
        self._fill(budget, lam, arg, cost)
        if self._exchange(budget, arg, cost):
            self._fill(budget, lam, arg, cost)
        if budget is not None and self._insertions_matter(arg):
            for _ in range(_MAX_INSERTIONS):
                if not self._insert(budget, arg, cost):
                    break
                self._fill(budget, lam, arg, cost)
        choice = np.zeros(self.values.n_customers, dtype=np.int16)
        for _ in range(8):
            choice[self.rows] = arg
            if budget is None:
                return choice
            # The reported spend sums per customer in another order than cost.sum(): an
            # answer within the budget here can be over it there by an ulp.
            over = _totals(self.values, choice, ("spend",))["spend"] - budget
            if over <= 0:
                return choice
            self._within_budget(over, arg, cost)
        raise AssertionError("could not bring the spend within the budget")

    def _within_budget(self, over: float, arg: np.ndarray, cost: np.ndarray) -> None:
        """Frees ``over`` of spend: a choice accepted within rounding of the budget (at
        multiplier 0 when the unconstrained spend exceeds the budget by an ulp, or an answer
        whose reported spend does) gives up the one move of least objective that frees enough,
        a treated customer dropped or moved to a cheaper arm with room. Should no single move
        do, customers of least objective per unit of spend are dropped until it fits."""
        if over <= 0:
            return
        current = self._gather(self.value, arg)
        room = self.caps - np.bincount(arg, minlength=self.n_coupons + 1)[1:]
        best_loss, best = np.inf, None
        for k in range(-1, self.n_coupons):  # -1: no coupon
            if k >= 0 and room[k] <= 0:
                continue
            to_value = 0.0 if k < 0 else self.value[k]
            to_cost = 0.0 if k < 0 else self.cost[k]
            loss = current - to_value  # inf where arm k is not positive
            ok = (arg > 0) & (arg != k + 1) & (cost - to_cost >= over) & np.isfinite(loss)
            if not ok.any():
                continue
            who = int(np.argmin(np.where(ok, loss, np.inf)))
            if loss[who] < best_loss:
                best_loss, best = float(loss[who]), (who, k)
        if best is not None:
            who, k = best
            arg[who] = k + 1
            cost[who] = 0.0 if k < 0 else self.cost[k, who]
            return
        treated = np.flatnonzero(arg)
        with np.errstate(divide="ignore"):
            ratio = current[treated] / cost[treated]  # free customers last: inf
        order = treated[np.argsort(ratio, kind="stable")]
        need = int(np.searchsorted(np.cumsum(cost[order]), over)) + 1
        arg[order[:need]] = 0
        cost[order[:need]] = 0.0

    def _fill(self, budget: float | None, lam: float, arg: np.ndarray, cost: np.ndarray) -> None:
        """Spend what is left on the best upgrades (one per customer, from the current arm to a
        better one with room), best objective per unit of spend first, taking what fits."""
        left = np.inf if budget is None else budget - cost.sum()
        room = self.caps - np.bincount(arg, minlength=self.n_coupons + 1)[1:]
        current = self._gather(self.value, arg)
        best_score = np.full(self.m, -np.inf)
        target = np.zeros(self.m, dtype=np.int16)
        gain = np.zeros(self.m)
        extra = np.zeros(self.m)
        for k in range(self.n_coupons):
            if room[k] <= 0:
                continue
            dv = self.value[k] - current  # 0 for the current arm: never an upgrade
            dc = self.cost[k] - cost
            score = dv - lam * dc if lam else dv
            better = (dv > 0) & (score > best_score)
            if np.isfinite(left):
                better &= dc <= left
            np.copyto(best_score, score, where=better)
            np.copyto(target, k + 1, where=better)
            np.copyto(gain, dv, where=better)
            np.copyto(extra, dc, where=better)
        who = np.flatnonzero(target)
        if who.size == 0:
            return
        if budget is None:
            key = gain[who]
        else:
            with np.errstate(divide="ignore"):
                key = np.where(extra[who] > 0, gain[who] / extra[who], np.inf)
        who = who[np.argsort(-key, kind="stable")]
        to, dc = target[who], extra[who]
        # Take what fits, in that order, skipping what does not (left only shrinks, so a skipped
        # upgrade never fits later): a window at a time, each ending at the first misfit.
        capped = np.flatnonzero(np.isfinite(room))
        start, width = 0, 256
        for _ in range(_MAX_FILL_ROUNDS):
            if start >= who.size:
                break
            end = min(start + width, who.size)
            fits = np.flatnonzero((dc[start:end] <= left) & (room[to[start:end] - 1] > 0))
            w_to, w_dc = to[start:end][fits], dc[start:end][fits]
            over = np.cumsum(w_dc) > left
            for k in capped:
                over |= np.cumsum(w_to == k + 1) > room[k]
            take = int(np.argmax(over)) if over.any() else fits.size
            taken = who[start:end][fits[:take]]
            arg[taken] = w_to[:take]
            cost[taken] = self.cost[w_to[:take] - 1, taken]
            left -= w_dc[:take].sum()
            room -= np.bincount(w_to[:take], minlength=self.n_coupons + 1)[1:]
            if take < fits.size:  # resume after the misfit
                start += int(fits[take]) + 1
            else:
                start, width = end, 2 * width

    def _exchange(self, budget: float | None, arg: np.ndarray, cost: np.ndarray) -> bool:
        """In each capped arm at its cap, the weakest members make way for the strongest
        customers without a coupon: the weakest with the strongest, the next with the next,
        while the pairs gain and their extra spend fits. The fill cannot do this (the arm has
        no room); it matters when a few customers fill the cap (small or tightly capped
        campaigns). Returns whether anything changed."""
        left = np.inf if budget is None else budget - cost.sum()
        counts = np.bincount(arg, minlength=self.n_coupons + 1)[1:]
        changed = False
        for k in self._binding_caps():
            if counts[k] < self.caps[k] or counts[k] == 0:
                continue
            members = np.flatnonzero(arg == k + 1)
            outsiders = np.flatnonzero((arg == 0) & np.isfinite(self.value[k]))
            pairs = min(members.size, outsiders.size)
            if pairs == 0:
                continue
            # The first pair decides whether any exchange happens: look before sorting.
            weakest = members[np.argmin(self.value[k, members])]
            strongest = outsiders[np.argmax(self.value[k, outsiders])]
            if (
                self.value[k, strongest] <= self.value[k, weakest]
                or self.cost[k, strongest] - self.cost[k, weakest] > left
            ):
                continue
            weak = members[np.argsort(self.value[k, members], kind="stable")[:pairs]]
            strong = outsiders[np.argsort(-self.value[k, outsiders], kind="stable")[:pairs]]
            gains = self.value[k, strong] - self.value[k, weak]
            extra = np.cumsum(self.cost[k, strong] - self.cost[k, weak])
            stop = (gains <= 0) | (extra > left)
            take = int(np.argmax(stop)) if stop.any() else pairs
            if take == 0:
                continue
            arg[weak[:take]] = 0
            cost[weak[:take]] = 0.0
            arg[strong[:take]] = k + 1
            cost[strong[:take]] = self.cost[k, strong[:take]]
            left -= extra[take - 1]
            changed = True
        return changed

    def _insertions_matter(self, arg: np.ndarray) -> bool:
        """An insertion moves one customer and gains at most that customer's objective: worth
        its sorts while the campaign treats few customers or one can be a visible share."""
        treated = np.count_nonzero(arg)
        if treated <= _INSERTION_MAX_TREATED:
            return True
        return self.max_value > 1e-3 * float(self._gather(self.value, arg).sum())

    def _insert(self, budget: float | None, arg: np.ndarray, cost: np.ndarray) -> bool:
        """The knapsack exchange the greedy fill misses: one customer moves to a better arm
        whose extra spend does not fit what is left, paid for by dropping treated customers
        (members of that arm when it is at its cap: one of them must make room), either the
        ones with the least objective per unit of spend or the single one of least objective
        that frees enough. Applies the best such move when it gains; returns whether it did."""
        if budget is None:
            return False
        treated = np.flatnonzero(arg)
        if treated.size == 0:
            return False
        current = self._gather(self.value, arg)
        left = budget - cost.sum()
        room = self.caps - np.bincount(arg, minlength=self.n_coupons + 1)[1:]
        best_gain, best = 0.0, None
        shared: list[_DropOrders] = []  # the treated customers' orders, for arms with room
        for k in range(self.n_coupons):
            extra = self.cost[k] - cost
            who = np.flatnonzero((self.value[k] > current) & (extra > left) & (arg != k + 1))
            if who.size == 0:
                continue
            if room[k] > 0:
                if not shared:
                    shared.append(_DropOrders(treated, current, cost))
                pool = shared[0]
            else:
                pool = _DropOrders(np.flatnonzero(arg == k + 1), current, cost)
            if pool.size == 0:
                continue
            gain = self.value[k, who] - current[who]
            if who.size > _INSERTION_MOVERS:  # the movers who gain most are the ones to try
                keep = np.argpartition(-gain, _INSERTION_MOVERS)[:_INSERTION_MOVERS]
                who, gain = who[keep], gain[keep]
            need = extra[who] - left
            for drop, loss in (pool.by_ratio(who, need), pool.single(who, need)):
                net = np.where(np.isfinite(loss), gain - loss, -np.inf)
                top = int(np.argmax(net))
                if net[top] > best_gain:
                    best_gain, best = float(net[top]), (k, int(who[top]), drop(top))
        if best is None or best_gain <= 1e-9 * abs(float(current.sum())):
            return False
        k, customer, dropped = best
        arg[dropped] = 0
        cost[dropped] = 0.0
        arg[customer] = k + 1
        cost[customer] = self.cost[k, customer]
        return True


class _DropOrders:
    """Treated customers (``pool``) that could be dropped to pay for a move, in the two orders
    ``_Candidates._insert`` drops them in; built once, asked for many movers."""

    def __init__(self, pool: np.ndarray, current: np.ndarray, cost: np.ndarray) -> None:
        self.size = pool.size
        if pool.size == 0:
            return
        with np.errstate(divide="ignore"):
            ratio = current[pool] / cost[pool]  # free customers last: inf
        self.by_ratio_order = order = pool[np.argsort(ratio, kind="stable")]
        self.freed, self.lost = np.cumsum(cost[order]), np.cumsum(current[order])
        self.position = np.full(current.size, current.size, dtype=np.int64)
        self.position[order] = np.arange(order.size)
        self.by_cost_order = order = pool[np.argsort(cost[pool], kind="stable")]
        self.sorted_cost = cost[order]
        values = current[order]
        self.suffix_min = np.minimum.accumulate(values[::-1])[::-1]
        # the first position at or after j holding its suffix's minimum holds j's minimum
        holder = np.where(values == self.suffix_min, np.arange(order.size), order.size)
        self.where_min = np.minimum.accumulate(holder[::-1])[::-1]

    def by_ratio(self, who: np.ndarray, need: np.ndarray):
        """For each mover, drop customers in order of objective per spend until ``need`` is
        freed: (drop(i) -> the dropped customers, lost objective per mover; inf when they
        cannot free enough or the mover itself would be dropped)."""
        order = self.by_ratio_order
        cut = np.searchsorted(self.freed, need)  # drop order[: cut + 1]
        ok = (cut < order.size) & (self.position[who] > cut)
        loss = np.where(ok, self.lost[np.minimum(cut, order.size - 1)], np.inf)
        return (lambda i: order[: cut[i] + 1]), loss

    def single(self, who: np.ndarray, need: np.ndarray):
        """For each mover, drop the one customer of least objective whose spend frees
        ``need`` (inf when none does, or it is the mover itself)."""
        order = self.by_cost_order
        first = np.searchsorted(self.sorted_cost, need)  # from here on they free enough
        at = self.where_min[np.minimum(first, order.size - 1)]
        ok = (first < order.size) & (order[at] != who)
        loss = np.where(ok, self.suffix_min[np.minimum(first, order.size - 1)], np.inf)
        return (lambda i: order[at[i] : at[i] + 1]), loss


def allocate(
    values: ArmValues,
    *,
    budget: float | None = None,
    caps: Sequence[int | None] | np.ndarray | None = None,
    eligible: np.ndarray | None = None,
) -> Allocation:
    """At most one coupon per customer maximizing the total objective with the total expected
    spend within ``budget`` (None: no budget) and arm a + 1 given to at most ``caps[a]``
    customers (None: no cap); customers with ``eligible`` False get none."""
    return _Candidates(values, caps, eligible).solve(budget)


def allocate_exact(
    values: ArmValues,
    *,
    budget: float | None,
    caps: Sequence[int | None] | np.ndarray | None = None,
    eligible: np.ndarray | None = None,
) -> Allocation:
    """The LP relaxation's optimum by HiGHS: x[i, a] in [0, 1], sum_a x[i, a] <= 1, the budget
    and the caps. ``objective``, ``profit``, ``revenue``, ``conversions`` and ``spend`` are the
    LP's (fractional) totals; ``choice`` and ``counts`` round it down (only x = 1 is treated),
    which keeps it feasible. For small instances: tests, and the benchmark at 20k customers."""
    from scipy import sparse
    from scipy.optimize import linprog

    budget = _check_budget(budget)
    problem = _Candidates(values, caps, eligible)
    k_arms, m = problem.value.shape
    on = np.isfinite(problem.value.T)  # [m, K] variables: positive, eligible arms
    row, arm = np.nonzero(on)
    n_var = row.size
    choice = np.zeros(values.n_customers, dtype=np.int16)
    if n_var == 0:
        return _allocation(values, choice, multiplier=0.0, budget=budget)
    v = problem.value[arm, row]
    c = problem.cost[arm, row]
    blocks = [sparse.csr_matrix((np.ones(n_var), (row, np.arange(n_var))), shape=(m, n_var))]
    bounds = [np.ones(m)]
    budget_row = None
    if budget is not None:
        budget_row = m
        blocks.append(sparse.csr_matrix(c[None, :]))
        bounds.append(np.array([budget]))
    capped = np.flatnonzero(np.isfinite(problem.caps))
    if capped.size:
        rank = np.full(k_arms, -1)
        rank[capped] = np.arange(capped.size)
        keep = rank[arm] >= 0
        blocks.append(
            sparse.csr_matrix(
                (np.ones(keep.sum()), (rank[arm[keep]], np.flatnonzero(keep))),
                shape=(capped.size, n_var),
            )
        )
        bounds.append(problem.caps[capped])
    result = linprog(
        -v,
        A_ub=sparse.vstack(blocks, format="csr"),
        b_ub=np.concatenate(bounds),
        bounds=(0.0, 1.0),
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"HiGHS did not solve the LP: {result.message}")
    x = np.clip(result.x, 0.0, 1.0)
    customer = problem.rows[row]
    whole = x >= 1.0 - 1e-7
    choice[customer[whole]] = arm[whole] + 1
    totals = {
        name: float(np.dot(x, getattr(values, name)[customer, arm + 1]))
        for name in ("objective", "profit", "revenue", "conversions", "spend")
    }
    totals["objective"] = float(-result.fun)
    multiplier = 0.0 if budget_row is None else float(-result.ineqlin.marginals[budget_row])
    return Allocation(
        choice=choice,
        counts=np.bincount(choice, minlength=values.n_arms).astype(np.int64),
        multiplier=max(multiplier, 0.0),
        budget=budget,
        **totals,
    )


# ---------------------------------------------------------------------------------------------
# The efficient frontier
# ---------------------------------------------------------------------------------------------
@dataclass
class FrontierCurve:
    name: str  # "model" | "best_single_coupon" | "random"
    budget: np.ndarray
    spend: np.ndarray
    objective: np.ndarray
    profit: np.ndarray
    revenue: np.ndarray
    conversions: np.ndarray
    roi: np.ndarray


@dataclass
class Frontier:
    curves: dict[str, FrontierCurve]
    unconstrained_spend: float


_CURVE_FIELDS = ("spend", "objective", "profit", "revenue", "conversions")


def _curve(name: str, budgets: np.ndarray, rows: dict[str, np.ndarray]) -> FrontierCurve:
    with np.errstate(divide="ignore", invalid="ignore"):
        roi = np.where(rows["spend"] > 0, rows["profit"] / rows["spend"], np.nan)
    return FrontierCurve(name=name, budget=budgets, roi=roi, **rows)


def _random_order_curve(
    values: ArmValues,
    order: np.ndarray,
    arm: np.ndarray,
    caps: np.ndarray,
    spend_targets: np.ndarray,
) -> dict[str, np.ndarray]:
    """Customers ``order`` in turn get arm ``arm`` (one per customer in that order) until the
    spend reaches each target; customers whose arm's cap is used up are passed over."""
    if order.size:
        quota_ok = np.ones(order.size, dtype=bool)
        for k in np.flatnonzero(np.isfinite(caps)):
            mine = arm == k + 1
            quota_ok &= ~mine | (np.cumsum(mine) <= caps[k])
        order, arm = order[quota_ok], arm[quota_ok]
    cumulative = {
        name: np.concatenate([[0.0], np.cumsum(getattr(values, name)[order, arm])])
        for name in _CURVE_FIELDS
    }
    reach = np.searchsorted(cumulative["spend"], spend_targets, side="right") - 1
    return {name: cumulative[name][reach] for name in _CURVE_FIELDS}


def efficient_frontier(
    values: ArmValues,
    *,
    caps: Sequence[int | None] | np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    points: int = 25,
    seed: int = 0,
) -> Frontier:
    """Objective against budget for ``points`` budgets from 0 to the unconstrained optimum's
    spend: the optimizer ("model"), and at the model's spend the best single coupon given to
    random eligible customers ("best_single_coupon": per point the coupon with the best total
    objective) and a random coupon each for random eligible customers ("random"); both respect
    the caps. The model's last point is the unconstrained optimum."""
    if points < 2:
        raise ValueError("points must be at least 2")
    problem = _Candidates(values, caps, eligible)
    unconstrained = problem.solve(None)
    budgets = np.linspace(0.0, unconstrained.spend, points)
    model, history = [], []
    for budget in budgets[:-1]:
        if len(history) == 2:  # the multipliers move smoothly along the frontier: extrapolate
            (lam0, mu0), (lam1, mu1) = history
            problem.multipliers = (
                float(np.clip(2 * lam1 - lam0, 0.5 * lam1, 2 * lam1)),
                np.clip(2 * mu1 - mu0, 0.5 * mu1, 2 * mu1),
            )
        allocation = problem.solve(budget, warm=True)
        if model and allocation.objective < model[-1].objective:
            # A heuristic's answer can dip by a fraction of a customer where the LP's rounding
            # changes; the previous answer fits this budget too, so the curve never falls.
            previous = model[-1]
            allocation = _allocation(
                values, previous.choice.copy(), multiplier=previous.multiplier, budget=budget
            )
        model.append(allocation)
        if problem.multipliers is not None:
            history = [*history[-1:], problem.multipliers]
    model.append(unconstrained)
    model_rows = {name: np.array([getattr(a, name) for a in model]) for name in _CURVE_FIELDS}
    targets = model_rows["spend"]

    rng = np.random.default_rng(seed)
    pool = (
        np.arange(values.n_customers)
        if eligible is None
        else np.flatnonzero(np.asarray(eligible, dtype=bool))
    )
    order = rng.permutation(pool)
    n_coupons = values.n_arms - 1
    single = {name: np.full(points, -np.inf) for name in _CURVE_FIELDS}
    for k in range(n_coupons):
        rows = _random_order_curve(
            values, order, np.full(order.size, k + 1, np.int64), problem.caps, targets
        )
        better = rows["objective"] > single["objective"]
        for name in _CURVE_FIELDS:
            single[name] = np.where(better, rows[name], single[name])
    if n_coupons == 0:
        single = {name: np.zeros(points) for name in _CURVE_FIELDS}
    random_order = rng.permutation(pool)
    random_arm = rng.integers(1, n_coupons + 1, size=random_order.size) if n_coupons else None
    random_rows = (
        _random_order_curve(values, random_order, random_arm, problem.caps, targets)
        if random_arm is not None
        else {name: np.zeros(points) for name in _CURVE_FIELDS}
    )
    return Frontier(
        curves={
            "model": _curve("model", budgets, model_rows),
            "best_single_coupon": _curve("best_single_coupon", budgets, single),
            "random": _curve("random", budgets, random_rows),
        },
        unconstrained_spend=float(unconstrained.spend),
    )
