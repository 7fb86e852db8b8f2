"""The ground-truth simulator: reproducible, well-formed, and its effects are really there.

Plain functions, no database. Sizes are small (a few thousand customers) to stay fast.
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pyarrow.csv as pacsv
import pytest

from modeling import simulation
from modeling.simulation import (
    ARMS_CONTROL,
    BLOCK_SIZE,
    DEFAULT_COUPONS,
    EVENT_TYPES,
    CouponSpec,
    _expected_discount,
    _realized_discount,
    draw_outcomes,
    ground_truth_from_events,
    load_ground_truth,
    oracle_incremental_profit,
    simulate_merchant,
    write_csvs,
)

N = 12_000
ARMS = (ARMS_CONTROL, *(c.code for c in DEFAULT_COUPONS))


@pytest.fixture(scope="module")
def sim():
    return simulate_merchant(N, seed=11)


def _uplift(truth, arm: str) -> np.ndarray:
    return truth.conversion_uplift()[:, truth.arm_index(arm)]


def _all_arrays(merchant) -> dict[str, np.ndarray]:
    t = merchant.truth
    out = {f"customers.{k}": v for k, v in merchant.customers.items()}
    out |= {f"events.{k}": v for k, v in merchant.events.items()}
    out |= {f"treatments.{k}": v for k, v in merchant.treatments.items()}
    out |= {"p": t.p_convert, "ov": t.order_value, "cost": t.discount_cost}
    out |= {f"latent.{k}": v for k, v in t.latent.items()}
    return out


# --- reproducibility -------------------------------------------------------------------------
def test_same_seed_gives_identical_merchant():
    # given / when
    a, b = simulate_merchant(3000, seed=5), simulate_merchant(3000, seed=5)
    # then
    arrays_a, arrays_b = _all_arrays(a), _all_arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for key, value in arrays_a.items():
        assert np.array_equal(value, arrays_b[key], equal_nan=value.dtype.kind == "f"), key


def test_different_seed_gives_different_merchant():
    a, b = simulate_merchant(3000, seed=5), simulate_merchant(3000, seed=6)
    assert a.n_events != b.n_events or not np.array_equal(
        a.events["timestamp"], b.events["timestamp"]
    )
    assert not np.array_equal(a.truth.p_convert, b.truth.p_convert)


def test_a_block_of_customers_does_not_depend_on_the_customers_after_it():
    # given: the same seed, one merchant a block and a bit, one two full blocks
    small = simulate_merchant(BLOCK_SIZE + 300, seed=2)
    large = simulate_merchant(2 * BLOCK_SIZE, seed=2)
    # then: the first block is the same in both
    in_small = small.events["customer_index"] < BLOCK_SIZE
    in_large = large.events["customer_index"] < BLOCK_SIZE
    for key in ("customer_index", "timestamp", "event_type", "item_id", "price"):
        a, b = small.events[key][in_small], large.events[key][in_large]
        assert np.array_equal(a, b, equal_nan=key == "price"), key
    assert np.array_equal(small.truth.p_convert[:BLOCK_SIZE], large.truth.p_convert[:BLOCK_SIZE])
    assert np.array_equal(
        small.treatments["arm"][:BLOCK_SIZE], large.treatments["arm"][:BLOCK_SIZE]
    )


def test_merchant_does_not_depend_on_how_its_columns_were_allocated(monkeypatch):
    # given: small blocks, and columns sized for one event per customer, so they must grow
    # several times while holding earlier blocks
    monkeypatch.setattr(simulation, "BLOCK_SIZE", 600)
    reference = simulate_merchant(2500, seed=8)
    monkeypatch.setattr(simulation, "_EVENTS_PER_CUSTOMER_GUESS", 1)
    # when
    grown = simulate_merchant(2500, seed=8)
    # then
    for key, value in _all_arrays(reference).items():
        assert np.array_equal(value, _all_arrays(grown)[key], equal_nan=value.dtype.kind == "f")


# --- shapes, types, ranges -------------------------------------------------------------------
def test_customers_have_ids_signup_and_attributes(sim):
    c = sim.customers
    assert list(c) == [
        "customer_id",
        "signup_at",
        "city_tier",
        "age_band",
        "member_level",
        "gender",
    ]
    assert c["customer_id"][0] == "C0000001"
    assert len(np.unique(c["customer_id"])) == N
    assert c["signup_at"].dtype == np.dtype("datetime64[s]")
    assert set(np.unique(c["city_tier"])) <= {1, 2, 3, 4}
    assert set(np.unique(c["member_level"])) == {"none", "silver", "gold"}


def test_events_are_strictly_ordered_by_customer_then_time_within_the_window(sim):
    e = sim.events
    cust = e["customer_index"].astype(np.int64)
    ts = e["timestamp"].astype(np.int64)
    assert np.all(np.diff(cust) >= 0)
    same = np.diff(cust) == 0
    # strictly: no two events of a customer in one second (an import rejects repeated rows)
    assert np.all(np.diff(ts)[same] > 0)
    assert e["timestamp"].min() >= sim.start
    assert e["timestamp"].max() < sim.end
    first_event = np.full(N, np.iinfo(np.int64).max)
    np.minimum.at(first_event, cust, ts)
    assert np.all(sim.customers["signup_at"].astype(np.int64) <= first_event)
    assert 15 <= sim.n_events / N <= 60  # tens of events per customer


def test_event_fields_are_empty_where_the_event_type_has_none(sim):
    e = sim.events
    kind = e["event_type"].astype(str)
    assert set(np.unique(kind)) == set(EVENT_TYPES)
    has_item = kind != "search"
    assert np.all((e["item_id"].astype(str) != "") == has_item)
    assert np.all((e["category"].astype(str) != "") == has_item)
    priced = np.isin(kind, ["view", "cart", "purchase", "refund"])
    assert np.all(np.isfinite(e["price"]) == priced)
    assert np.all(e["price"][priced] > 0)
    counted = np.isin(kind, ["cart", "purchase", "refund"])
    assert np.all(np.isfinite(e["quantity"]) == counted)
    assert set(np.unique(e["quantity"][counted])) == {1.0, 2.0, 3.0}
    assert np.array_equal(np.array(EVENT_TYPES)[e["event_code"]], kind)


def test_treatments_and_truth_are_in_range(sim):
    t, truth = sim.treatments, sim.truth
    assert truth.arms == ARMS
    assert len(t["arm"]) == N  # experiment_share=1.0: everyone
    assert np.all((t["propensity"] > 0) & (t["propensity"] <= 1))
    assert np.allclose(t["propensity"], 1 / len(ARMS))
    assert np.all(t["assigned_at"] == sim.end)
    assert t["converted"].dtype == bool
    assert np.all(t["revenue"][~t["converted"]] == 0)
    assert np.all(t["revenue"] >= 0)  # a discount never exceeds the order
    assert (t["revenue"][t["converted"]] > 0).mean() > 0.99
    assert truth.p_convert.shape == (N, len(ARMS)) and truth.p_convert.dtype == np.float32
    assert np.all((truth.p_convert >= 0) & (truth.p_convert <= 1))
    assert np.all(truth.order_value > 0)
    assert np.all(truth.discount_cost[:, 0] == 0) and np.all(truth.discount_cost >= 0)
    assert set(np.unique(truth.latent["persona"])) >= {
        "sure_thing",
        "price_sensitive",
        "cart_abandoner",
        "lapsing",
        "coupon_averse",
        "lost_cause",
    }


def test_overall_baseline_conversion_is_realistic(sim):
    assert 0.03 <= sim.truth.p_convert[:, 0].mean() <= 0.08


def test_truth_is_a_function_of_the_visible_sequence_and_latent_traits(sim):
    recomputed = ground_truth_from_events(
        events=sim.events, customers=sim.customers, latent=sim.truth.latent, end=sim.end
    )
    assert np.array_equal(recomputed.p_convert, sim.truth.p_convert)
    assert np.array_equal(recomputed.discount_cost, sim.truth.discount_cost)


# --- the effects: order and timing matter ------------------------------------------------------
def _replay(sim, rows: np.ndarray, sequence: list[tuple]):
    """Give customers ``rows`` (their latent traits and attributes) the same made-up sequence of
    (event_type, days before the assignment, price, quantity) and return the truth for them."""
    k = len(rows)
    n_ev = len(sequence)
    kinds, days, prices, quantities = zip(*sequence, strict=True)
    events = {
        "customer_index": np.repeat(np.arange(k), n_ev),
        "timestamp": np.tile(sim.end - (np.array(days) * 86_400).astype("timedelta64[s]"), k),
        "event_type": np.tile(np.array(kinds), k),
        "category": np.tile(np.array(["fashion"] * n_ev), k),
        "price": np.tile(np.array(prices, dtype=float), k),
        "quantity": np.tile(np.array(quantities, dtype=float), k),
    }
    customers = {key: value[rows] for key, value in sim.customers.items()}
    latent = {key: value[rows] for key, value in sim.truth.latent.items()}
    return ground_truth_from_events(events=events, customers=customers, latent=latent, end=sim.end)


NAN = float("nan")


def test_a_cart_left_last_raises_free_shipping_response_more_than_the_same_cart_bought(sim):
    # given: the same events, totals and times; only the order of the last two differs
    rows = np.arange(500)
    views = [("view", d, 79.9, NAN) for d in (20, 9, 1.2)]
    bought = [*views, ("cart", 1.1, 79.9, 1.0), ("purchase", 1.09, 79.9, 1.0)]
    abandoned = [*views, ("purchase", 1.1, 79.9, 1.0), ("cart", 1.09, 79.9, 1.0)]
    # when
    truth_bought, truth_abandoned = _replay(sim, rows, bought), _replay(sim, rows, abandoned)
    # then: higher for everyone a coupon does not put off
    gain = _uplift(truth_abandoned, "FREESHIP") - _uplift(truth_bought, "FREESHIP")
    averse = sim.truth.latent["coupon_aversion"][rows] > 0
    assert np.all(gain[~averse] > 0)
    assert gain.mean() > 0.05
    # and free shipping is the abandoners' best coupon for a cart below the free-shipping level
    best = np.argmax(truth_abandoned.conversion_uplift()[:, 1:].mean(axis=0)) + 1
    assert truth_abandoned.arms[best] == "FREESHIP"


def test_the_pull_of_an_abandoned_cart_fades_within_days(sim):
    rows = np.arange(500)
    views = [("view", d, 79.9, NAN) for d in (30, 20)]
    fresh = _replay(sim, rows, [*views, ("view", 0.6, 79.9, NAN), ("cart", 0.5, 79.9, 1.0)])
    stale = _replay(sim, rows, [*views, ("view", 6.1, 79.9, NAN), ("cart", 6.0, 79.9, 1.0)])
    assert _uplift(fresh, "FREESHIP").mean() > 3 * _uplift(stale, "FREESHIP").mean()


def test_a_cart_just_below_the_threshold_makes_the_threshold_discount_work(sim):
    rows = np.arange(500)
    just_below = _replay(sim, rows, [("view", 0.6, 179.9, NAN), ("cart", 0.5, 179.9, 1.0)])
    small = _replay(sim, rows, [("view", 0.6, 59.9, NAN), ("cart", 0.5, 59.9, 1.0)])
    assert np.all(_uplift(just_below, "SPEND199_30") > _uplift(small, "SPEND199_30"))
    best = np.argmax(just_below.conversion_uplift()[:, 1:].mean(axis=0)) + 1
    assert just_below.arms[best] == "SPEND199_30"


def test_a_lapsing_buyer_responds_to_amount_off(sim):
    # given: one purchase and three views; lapsing = the purchase long ago, the views recent
    rows = np.arange(500)
    lapsing = [("purchase", 45, 99.9, 1.0), *[("view", d, 99.9, NAN) for d in (5, 3, 2)]]
    fresh_buyer = [*[("view", d, 99.9, NAN) for d in (47, 46, 45)], ("purchase", 2, 99.9, 1.0)]
    # when
    truth_lapsing, truth_fresh = _replay(sim, rows, lapsing), _replay(sim, rows, fresh_buyer)
    # then
    assert np.all(_uplift(truth_lapsing, "AMT20") > _uplift(truth_fresh, "AMT20"))
    assert _uplift(truth_lapsing, "AMT20").mean() > 0.02


def test_recency_of_the_last_activity_decays_every_effect(sim):
    rows = np.arange(500)
    sequence = [("search", 0, NAN, NAN), ("view", 0, 29.9, NAN), ("view", 0, 24.9, NAN)]
    recent = _replay(sim, rows, [(k, d + 1, p, q) for k, d, p, q in sequence])
    old = _replay(sim, rows, [(k, d + 40, p, q) for k, d, p, q in sequence])
    # the same searches and views, 40 days later: every effect is weaker, and so is the baseline
    averse = sim.truth.latent["coupon_aversion"][rows] > 0
    gap = _uplift(recent, "PCT10") - _uplift(old, "PCT10")
    assert np.all(gap[~averse] > 0)
    recent_up, old_up = recent.conversion_uplift()[:, 1:], old.conversion_uplift()[:, 1:]
    assert np.all(np.abs(recent_up.mean(axis=0)) > np.abs(old_up.mean(axis=0)))
    assert recent.p_convert[:, 0].mean() > 2 * old.p_convert[:, 0].mean()


# --- the personas in the simulated population ----------------------------------------------
def test_sleeping_dogs_convert_less_with_any_coupon(sim):
    dogs = sim.truth.latent["persona"] == "coupon_averse"
    uplift = sim.truth.conversion_uplift()[dogs, 1:]
    assert np.all(uplift.mean(axis=0) < -0.01)
    assert (uplift < 0).mean() > 0.9


def test_sure_things_convert_anyway_and_coupons_barely_move_them(sim):
    sure = sim.truth.latent["persona"] == "sure_thing"
    p = sim.truth.p_convert
    assert p[sure, 0].mean() > 3 * p[:, 0].mean()
    assert np.all(np.abs(sim.truth.conversion_uplift()[sure, 1:].mean(axis=0)) < 0.005)
    # so a coupon only costs them margin
    assert np.all(sim.truth.uplift(0.3)[sure, 1:].mean(axis=0) < 0)


def test_price_sensitive_customers_respond_most_to_percent_off(sim):
    persona = sim.truth.latent["persona"]
    up = sim.truth.conversion_uplift()
    sensitive = persona == "price_sensitive"
    pct = sim.truth.arm_index("PCT10")
    assert np.argmax(up[sensitive].mean(axis=0)) == pct
    assert up[sensitive, pct].mean() > 0.02
    assert up[sensitive, pct].mean() > 2 * up[persona == "casual", pct].mean()
    # and they look it: they search more and view cheaper items
    observed = sim.truth.drivers["price_sensitivity_observed"]
    assert observed[sensitive].mean() > observed[persona == "sure_thing"].mean() + 0.3


def test_members_respond_to_member_price(sim):
    level = sim.customers["member_level"]
    member_uplift = _uplift(sim.truth, "MEMBER")
    gold, silver, none = (member_uplift[level == x].mean() for x in ("gold", "silver", "none"))
    assert gold > silver > none + 0.005
    assert abs(none) < 0.003


def test_lost_causes_neither_buy_nor_respond(sim):
    lost = sim.truth.latent["persona"] == "lost_cause"
    assert sim.truth.p_convert[lost, 0].mean() < 0.01
    assert np.all(np.abs(sim.truth.conversion_uplift()[lost].mean(axis=0)) < 0.002)


def test_responsive_groups_gain_a_few_points_on_their_best_coupon(sim):
    persona = sim.truth.latent["persona"]
    up = sim.truth.conversion_uplift()
    for name in ("price_sensitive", "cart_abandoner", "lapsing"):
        best = up[persona == name, 1:].mean(axis=0).max()
        assert 0.01 < best < 0.10, name


# --- the historical experiment and drawing outcomes ------------------------------------------
def test_observed_conversion_per_arm_matches_the_truth_within_sampling_error(sim):
    t, truth = sim.treatments, sim.truth
    for a, arm in enumerate(truth.arms):
        rows = t["arm"] == arm
        p = truth.p_convert[t["customer_index"][rows], a].astype(float)
        se = np.sqrt(np.sum(p * (1 - p))) / rows.sum()
        assert abs(t["converted"][rows].mean() - p.mean()) < 4 * se, arm
        assert abs(rows.mean() - 1 / len(truth.arms)) < 4 * np.sqrt(1 / 6 * 5 / 6 / N), arm


def test_revenue_of_conversions_matches_order_value_less_discount(sim):
    t, truth = sim.treatments, sim.truth
    won = t["converted"]
    arm = np.searchsorted(np.array(truth.arms), t["arm"][won], sorter=np.argsort(truth.arms))
    arm = np.argsort(truth.arms)[arm]
    ci = t["customer_index"][won]
    expected = truth.order_value[ci, arm] - truth.discount_cost[ci, arm]
    se = 0.6 * truth.order_value[ci, arm].mean() / np.sqrt(won.sum())
    assert abs(t["revenue"][won].mean() - expected.mean()) < 4 * se


def test_partial_experiment_share(sim):
    partial = simulate_merchant(4000, seed=3, experiment_share=0.3)
    n = len(partial.treatments["arm"])
    assert 0.25 * 4000 < n < 0.35 * 4000
    assert len(np.unique(partial.treatments["customer_index"])) == n


def test_custom_coupons_and_longer_outcome_window():
    coupons = (CouponSpec("SHIP", "Free delivery", "free_shipping", 0.0, 0.0, 14, 1),)
    weekly = simulate_merchant(3000, seed=4, coupons=coupons)
    fortnight = simulate_merchant(3000, seed=4, coupons=coupons, outcome_window_days=14)
    assert weekly.truth.arms == (ARMS_CONTROL, "SHIP")
    assert np.allclose(weekly.treatments["propensity"], 0.5)
    assert np.all(fortnight.truth.p_convert >= weekly.truth.p_convert)
    assert fortnight.truth.p_convert[:, 0].mean() > 1.5 * weekly.truth.p_convert[:, 0].mean()
    with pytest.raises(ValueError, match="kind"):
        CouponSpec("X", "x", "buy_one_get_one", 1.0, 0.0, 7, 1)


def test_draw_outcomes_follows_the_true_probabilities(sim):
    # given: one customer with a sizeable chance, drawn many times under free shipping
    rng = np.random.default_rng(0)
    fs = sim.truth.arm_index("FREESHIP")
    who = int(np.argmax(sim.truth.p_convert[:, fs] * (sim.truth.order_value[:, fs] < 120)))
    draws = 40_000
    # when
    converted, revenue = draw_outcomes(
        sim.truth, np.full(draws, who), np.full(draws, "FREESHIP"), rng
    )
    # then
    p = float(sim.truth.p_convert[who, fs])
    assert abs(converted.mean() - p) < 4 * np.sqrt(p * (1 - p) / draws)
    assert np.all(revenue[~converted] == 0)
    won = revenue[converted]
    # the fee is paid below the free-shipping level (99): no net revenue in [87, 99)
    assert not np.any((won >= 99 - 12 + 0.01) & (won < 99))
    # arm indices work as well as names, and unknown arms are refused
    c2, _ = draw_outcomes(sim.truth, np.array([who]), np.array([fs]), np.random.default_rng(1))
    assert c2.shape == (1,)
    with pytest.raises(ValueError, match="arm"):
        draw_outcomes(sim.truth, np.array([who]), np.array(["NOPE"]), rng)


@pytest.mark.parametrize(
    "coupon",
    [
        *DEFAULT_COUPONS,
        CouponSpec("A5", "5 off 50+", "amount_off", 5, 50, 7, 1),
        CouponSpec("A30", "30 off 10+", "amount_off", 30, 10, 7, 1),
    ],
)
def test_expected_discount_cost_matches_the_realized_discounts(coupon):
    # given: orders lognormal around the expected order value, as draw_outcomes makes them
    rng = np.random.default_rng(3)
    for mean in (40.0, 95.0, 170.0, 400.0):
        orders = mean * np.exp(0.45 * rng.standard_normal(400_000) - 0.5 * 0.45**2)
        # when
        realized = _realized_discount(coupon, orders, 12.0, 99.0).mean()
        expected = float(_expected_discount(coupon, np.array([mean]), 12.0, 99.0)[0])
        # then
        assert abs(realized - expected) < 0.01 * max(expected, 1.0), (coupon.code, mean)


# --- the oracle ------------------------------------------------------------------------------
def test_oracle_takes_the_best_profitable_coupon_per_customer(sim):
    truth = sim.truth
    profit = truth.uplift(0.3)
    oracle = oracle_incremental_profit(truth, 0.3)
    assert np.all(oracle.profit >= 0)
    assert np.all(oracle.profit >= profit[:, 1:].max(axis=1) - 1e-9)
    for a in range(1, len(truth.arms)):
        assert oracle.total_profit >= np.maximum(profit[:, a], 0).sum()
    assert set(np.unique(oracle.arm)) <= set(truth.arms)
    assert oracle.n_treated == int((oracle.choice > 0).sum()) > 0
    assert oracle.arm[oracle.choice == 0].tolist() == [ARMS_CONTROL] * int(
        (oracle.choice == 0).sum()
    )


def test_oracle_under_a_budget_spends_no_more_and_earns_no_more(sim):
    truth = sim.truth
    free = oracle_incremental_profit(truth, 0.3)
    profits = []
    for share in (0.0, 0.1, 0.5):
        budget = share * free.total_cost
        capped = oracle_incremental_profit(truth, 0.3, budget=budget)
        assert capped.total_cost <= budget + 1e-6
        profits.append(capped.total_profit)
    assert profits[0] == 0
    assert profits[0] < profits[1] < profits[2] <= free.total_profit
    # greedy by profit per unit spend: a tenth of the budget earns far more than a tenth
    assert profits[1] > 0.25 * free.total_profit


# --- files -----------------------------------------------------------------------------------
def test_write_csvs_reads_back_with_the_documented_headers(tmp_path):
    # given
    merchant = simulate_merchant(1500, seed=9)
    # when
    paths = write_csvs(merchant, tmp_path)
    # then
    headers = {
        name: path.read_text().splitlines()[0]
        for name, path in paths.items()
        if name != "ground_truth"
    }
    assert headers == {
        "customers": "customer_id,signup_at,city_tier,age_band,member_level,gender",
        "events": "customer_id,timestamp,event_type,item_id,category,price,quantity",
        "treatments": "customer_id,arm,assigned_at,propensity,converted,revenue",
        "coupon_types": "code,name,kind,value,min_spend,validity_days,per_customer_limit",
    }
    events = pacsv.read_csv(paths["events"]).to_pydict()
    e = merchant.events
    assert len(events["customer_id"]) == merchant.n_events
    assert events["customer_id"] == merchant.customers["customer_id"][e["customer_index"]].tolist()
    assert events["event_type"] == e["event_type"].tolist()
    assert events["item_id"] == e["item_id"].tolist()
    assert events["category"] == e["category"].tolist()
    read_price = np.array([np.nan if v is None else v for v in events["price"]])
    assert np.array_equal(read_price, e["price"], equal_nan=True)
    read_qty = np.array([np.nan if v is None else v for v in events["quantity"]])
    assert np.array_equal(read_qty, e["quantity"], equal_nan=True)
    read_ts = np.array([v.replace(tzinfo=None) for v in events["timestamp"]], "datetime64[s]")
    assert np.array_equal(read_ts, e["timestamp"])
    raw = paths["events"].read_text().splitlines()[1]
    assert raw.split(",")[1].endswith("Z") and "T" in raw.split(",")[1]

    treatments = pacsv.read_csv(paths["treatments"]).to_pydict()
    t = merchant.treatments
    assert treatments["arm"] == t["arm"].tolist()
    assert treatments["converted"] == t["converted"].astype(int).tolist()
    assert np.array_equal(np.array(treatments["revenue"]), t["revenue"])
    assert np.allclose(treatments["propensity"], t["propensity"])

    customers = pacsv.read_csv(paths["customers"]).to_pydict()
    assert customers["customer_id"] == merchant.customers["customer_id"].tolist()
    assert customers["member_level"] == merchant.customers["member_level"].tolist()

    with paths["coupon_types"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["code"] for r in rows] == [c.code for c in DEFAULT_COUPONS]
    assert float(rows[2]["min_spend"]) == 199.0 and rows[2]["kind"] == "threshold_off"


def test_csv_files_do_not_depend_on_the_write_chunk_size(tmp_path):
    merchant = simulate_merchant(1500, seed=9)
    one = write_csvs(merchant, tmp_path / "one")
    many = write_csvs(merchant, tmp_path / "many", chunk_rows=777)
    for name in ("customers", "events", "treatments", "coupon_types"):
        assert one[name].read_bytes() == many[name].read_bytes(), name


def test_ground_truth_round_trips_through_npz(tmp_path):
    merchant = simulate_merchant(1500, seed=9)
    paths = write_csvs(merchant, tmp_path)
    loaded = load_ground_truth(paths["ground_truth"])
    truth = merchant.truth
    assert loaded.arms == truth.arms and loaded.coupons == truth.coupons
    assert np.array_equal(loaded.p_convert, truth.p_convert)
    assert np.array_equal(loaded.order_value, truth.order_value)
    assert np.array_equal(loaded.discount_cost, truth.discount_cost)
    assert np.array_equal(loaded.customer_id, merchant.customers["customer_id"])
    assert loaded.latent.keys() == truth.latent.keys()
    assert np.array_equal(loaded.latent["persona"], truth.latent["persona"])
    assert dataclasses.asdict(loaded.coupons[0]) == dataclasses.asdict(DEFAULT_COUPONS[0])
    assert oracle_incremental_profit(loaded, 0.3).total_profit == pytest.approx(
        oracle_incremental_profit(truth, 0.3).total_profit
    )


# --- the next period ---------------------------------------------------------------------------
def _next_period_inputs(truth, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = truth.customer_id[:n]
    arm = rng.integers(0, len(truth.arms), size=n)
    names = np.array(truth.arms)[arm]
    codes = np.where(arm > 0, np.char.add("CODE-", np.arange(n).astype(str)), "")
    return ids, names, codes, arm


START = np.datetime64("2026-03-01T00:00:00", "s")


def test_the_next_period_is_reproducible_from_its_seed(sim):
    ids, names, codes, _ = _next_period_inputs(sim.truth, 3000)

    def play(seed):
        return simulation.play_next_period(
            sim.truth, ids, names, codes, start=START, margin_rate=0.3, seed=seed
        )

    a, b, other = play(4), play(4), play(5)
    for name in ("converted", "revenue", "redeemed", "order_id"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.ordered_at.astype(np.int64), b.ordered_at.astype(np.int64))
    assert not np.array_equal(a.converted, other.converted)
    # the truth does not depend on the draw
    assert a.true_incremental_profit == other.true_incremental_profit


def test_the_next_period_draws_from_the_true_probabilities_and_order_values(sim):
    # given every customer on one coupon, then on none
    truth = sim.truth
    ids = truth.customer_id
    pct = truth.arm_index("PCT10")
    codes = np.char.add("C-", np.arange(len(ids)).astype(str))
    conversions, profit = [], []
    for seed in range(4):
        period = simulation.play_next_period(
            truth, ids, np.full(len(ids), "PCT10"), codes, start=START, margin_rate=0.3, seed=seed
        )
        conversions.append(period.converted.sum())
        profit.append((period.order * 0.3 - period.discount).sum())
        # percent off applies to every order; the code is redeemed on every order and no other
        assert np.array_equal(period.redeemed, period.converted)
        assert np.allclose(period.discount[period.converted], 0.1 * period.order[period.converted])
        assert np.allclose(
            period.revenue[period.converted],
            np.round(period.order - period.discount, 2)[period.converted],
        )
    # then the counts follow P(convert | PCT10) and the profit its expectation
    p = truth.p_convert[:, pct].astype(np.float64)
    expected = p.sum()
    assert abs(np.mean(conversions) - expected) < 4 * np.sqrt((p * (1 - p)).sum() / 4)
    expected_profit = (p * (truth.order_value[:, pct] * 0.3 - truth.discount_cost[:, pct])).sum()
    assert np.mean(profit) == pytest.approx(expected_profit, rel=0.1)


def test_redemption_follows_the_coupon_terms_as_in_the_historical_experiment(sim):
    truth = sim.truth
    n = 6000
    ids = truth.customer_id[:n]
    for arm, met in (
        ("SPEND199_30", lambda order: order >= 199),
        ("FREESHIP", lambda order: order < 99),
        ("control", lambda order: np.zeros(order.shape, dtype=bool)),
    ):
        codes = np.full(n, "" if arm == "control" else "X-1", dtype=object)
        period = simulation.play_next_period(
            truth, ids, np.full(n, arm), codes, start=START, margin_rate=0.3, seed=2
        )
        bought = period.converted
        assert np.array_equal(period.redeemed, bought & met(period.order)), arm
        assert np.all(period.discount[~period.redeemed] == 0)
        assert np.all(period.revenue[~bought] == 0)
        assert np.all(period.order_id[~bought] == "")
        assert len(set(period.order_id[bought])) == bought.sum()
        # the coupon is not always redeemed, nor never (the terms split the orders)
        if arm != "control":
            assert 0 < period.redeemed.sum() < bought.sum()


def test_the_true_incremental_profit_is_the_ground_truths(sim):
    truth = sim.truth
    ids, names, codes, arm = _next_period_inputs(truth, 5000, seed=3)
    period = simulation.play_next_period(
        truth, ids, names, codes, start=START, margin_rate=0.25, seed=1
    )
    rows = np.arange(5000)
    uplift = truth.uplift(0.25)[rows, arm]
    assert period.true_incremental_profit == pytest.approx(uplift.sum())
    assert np.allclose(period.true_conversions, truth.conversion_uplift()[rows, arm])
    assert np.all(period.true_profit[arm == 0] == 0)
    held = arm % 2 == 0
    totals = period.true_totals(held)
    assert totals["customers"] == held.sum()
    assert totals["profit"] == pytest.approx(uplift[held].sum())
    assert totals["cost"] == pytest.approx(truth.expected_cost()[rows, arm][held].sum())


def test_orders_fall_within_the_period_and_refuse_bad_input(sim):
    truth = sim.truth
    ids, names, codes, _ = _next_period_inputs(truth, 2000)
    period = simulation.play_next_period(
        truth, ids, names, codes, start=START, margin_rate=0.3, seed=9, days=3
    )
    times = period.ordered_at[period.converted]
    assert times.min() >= START and times.max() < START + np.timedelta64(3 * 86_400, "s")
    assert np.all(np.isnat(period.ordered_at[~period.converted]))
    with pytest.raises(ValueError, match="not in the ground truth"):
        simulation.play_next_period(
            truth, np.array(["NOPE"]), np.array(["control"]), None, start=START,
            margin_rate=0.3, seed=1,
        )  # fmt: skip
    with pytest.raises(ValueError, match="needs its code"):
        simulation.play_next_period(
            truth, ids[:1], np.array(["PCT10"]), np.array([""]), start=START,
            margin_rate=0.3, seed=1,
        )  # fmt: skip


def test_outcomes_csv_has_one_row_per_order_in_the_shared_format(sim, tmp_path):
    truth = sim.truth
    ids, names, codes, _ = _next_period_inputs(truth, 4000, seed=5)
    period = simulation.play_next_period(
        truth, ids, names, codes, start=START, margin_rate=0.3, seed=6
    )
    path = simulation.write_outcomes_csv(period, tmp_path / "outcomes.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["customer_id", "order_id", "ordered_at", "revenue", "code"]
    assert len(rows) == period.n_orders
    by_order = {r["order_id"]: r for r in rows}
    bought = np.flatnonzero(period.converted)
    for i in bought[:200]:
        row = by_order[period.order_id[i]]
        assert row["customer_id"] == ids[i]
        assert float(row["revenue"]) == pytest.approx(period.revenue[i])
        assert row["code"] == (codes[i] if period.redeemed[i] else "")
        assert row["ordered_at"].endswith("Z")
    assert len({r["order_id"] for r in rows}) == len(rows)
    assert all(float(r["revenue"]) >= 0 for r in rows)
