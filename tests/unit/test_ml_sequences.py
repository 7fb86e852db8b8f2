"""Sequence building and static features on hand-made events. Plain functions, no database."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.sequences import (
    GAP_SCALE,
    OTHER_CATEGORY,
    PAD_ID,
    UNKNOWN_ID,
    EventArrays,
    Normalizer,
    Preprocessing,
    Vocabulary,
    build_sequences,
    fit_preprocessing,
    static_features,
    transform,
)

DAY = 86_400
AS_OF = 1_000 * DAY


def gap(seconds: float) -> np.float32:
    return np.float32(np.log1p(seconds / 3600.0) / GAP_SCALE)


def hand_events(**overrides) -> EventArrays:
    """Customer 0: view, cart, purchase (and one event after as_of, ignored); customer 1: no
    events; customer 2: five views, the last of an unseen category; customer 3: a search."""
    rows = [
        # customer, seconds before as_of, type, category, price
        (0, 3 * DAY, "view", "tea", 10.0),
        (0, 3 * DAY - 60, "cart", "tea", 10.0),
        (0, 2 * DAY, "purchase", "tea", 10.0),
        (0, -DAY, "purchase", "tea", 99.0),  # after as_of: invisible
        (2, 9 * DAY, "view", "cups", 5.0),
        (2, 8 * DAY, "view", "cups", 6.0),
        (2, 7 * DAY, "view", "tea", 20.0),
        (2, 6 * DAY, "view", "tea", 30.0),
        (2, 5 * DAY, "view", "pots", 40.0),
        (3, 1 * DAY, "search", "", np.nan),
    ]
    data = {
        "customer_index": np.array([r[0] for r in rows]),
        "timestamp": np.array([AS_OF - r[1] for r in rows], dtype=np.int64),
        "event_type": np.array([r[2] for r in rows], dtype=object),
        "category": np.array([r[3] for r in rows], dtype=object),
        "price": np.array([r[4] for r in rows]),
        "n_customers": 4,
        "as_of": AS_OF,
        "attributes": {
            "city": np.array(["sh", "bj", "sh", "sh"], dtype=object),
            "age": np.array([30.0, np.nan, 50.0, 40.0]),
        },
    }
    data.update(overrides)
    return EventArrays(**data)


def test_sequences_keep_time_order_right_padding_and_gaps():
    # given
    events = hand_events()
    vocab = Vocabulary.fit(events, min_count=1)
    # when
    batch = build_sequences(events, vocab, max_len=4)
    # then: customer 0 has its three visible events left-aligned, padding after them
    assert batch.tokens.dtype == np.int32 and batch.tokens.shape == (4, 4)
    assert batch.gaps.dtype == np.float32 and batch.gaps.shape == (4, 4, 2)
    assert batch.lengths.tolist() == [3, 0, 4, 1]
    tokens = batch.tokens[0]
    assert (tokens[:3] > UNKNOWN_ID).all() and tokens[3] == PAD_ID
    assert len(set(tokens[:3].tolist())) == 3  # view, cart, purchase are different tokens
    assert batch.gaps[0, 0, 0] == 0.0  # the first event ever has no previous event
    assert batch.gaps[0, 1, 0] == pytest.approx(gap(60))
    assert batch.gaps[0, 2, 0] == pytest.approx(gap(DAY - 60))
    assert batch.gaps[0, :3, 1] == pytest.approx([gap(3 * DAY), gap(3 * DAY - 60), gap(2 * DAY)])
    assert (batch.gaps[0, 3] == 0).all()


def test_sequences_keep_the_last_max_len_events():
    events = hand_events()
    vocab = Vocabulary.fit(events, min_count=1)
    full = build_sequences(events, vocab, max_len=10)
    short = build_sequences(events, vocab, max_len=3)
    # customer 2 has five events: the last three, still in time order
    assert full.lengths[2] == 5 and short.lengths[2] == 3
    assert short.tokens[2].tolist() == full.tokens[2, 2:5].tolist()
    # the gap to the previous event is the real one, even across the truncation
    assert short.gaps[2, 0, 0] == pytest.approx(gap(DAY))


def test_customers_without_events_get_an_all_padding_row():
    events = hand_events()
    batch = build_sequences(events, Vocabulary.fit(events, min_count=1), max_len=5)
    assert batch.lengths[1] == 0
    assert (batch.tokens[1] == PAD_ID).all() and (batch.gaps[1] == 0).all()


def test_unknown_event_types_and_rare_categories():
    # given: a vocabulary fitted on customer 0 only (view/cart/purchase of "tea")
    events = hand_events()
    vocab = Vocabulary.fit(events, np.array([0]), min_count=1)
    assert vocab.event_types == ("cart", "purchase", "view")
    assert vocab.categories == ("", OTHER_CATEGORY, "tea")
    # when
    batch = build_sequences(events, vocab, max_len=5)
    # then: the search (a type customer 0 never did) is unknown; views of other categories are
    # "<other>" tokens, distinct from the "tea" views at the same price bucket
    assert batch.tokens[3, 0] == UNKNOWN_ID
    assert (batch.tokens[2, :5] > UNKNOWN_ID).all()
    other_category = vocab.token_ids(hand_events(category=np.array(["zzz"] * 10, dtype=object)))
    assert set(other_category[[0, 4]]) != set(vocab.token_ids(events)[[0, 4]])


def test_min_count_folds_rare_categories_into_other():
    events = hand_events()
    vocab = Vocabulary.fit(events, min_count=2)
    assert set(vocab.categories) == {"", OTHER_CATEGORY, "tea", "cups"}  # "pots" seen once


def test_integer_codes_give_the_same_tokens_as_strings():
    events = hand_events()
    type_names = ("view", "cart", "purchase", "search")
    category_names = ("tea", "cups", "pots")
    type_codes = np.array([type_names.index(t) for t in events.event_type])
    category_codes = np.array([category_names.index(c) if c else -1 for c in events.category])
    coded = hand_events(
        event_type=type_codes,
        category=category_codes,
        event_type_names=type_names,
        category_names=category_names,
    )
    vocab = Vocabulary.fit(events, min_count=1)
    assert Vocabulary.fit(coded, min_count=1) == vocab
    assert (build_sequences(coded, vocab).tokens == build_sequences(events, vocab).tokens).all()


def test_price_buckets_and_vocabulary_json_round_trip():
    events = hand_events()
    vocab = Vocabulary.fit(events, n_price_buckets=4, min_count=1)
    assert len(vocab.price_edges) == 3 and list(vocab.price_edges) == sorted(vocab.price_edges)
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    assert vocab.size == 2 + len(vocab.event_types) * len(vocab.categories) * 5
    assert build_sequences(events, vocab).tokens.max() < vocab.size


def test_events_must_be_sorted():
    with pytest.raises(ValueError, match="sorted"):
        hand_events(customer_index=np.array([0, 0, 0, 0, 2, 2, 2, 2, 2, 1]))
    with pytest.raises(ValueError, match="sorted"):
        hand_events(timestamp=np.arange(10, 0, -1, dtype=np.int64))


def test_static_features_by_hand():
    events = hand_events(quantity=np.array([np.nan, 1, 2, 1, np.nan, np.nan, 1, 1, 1, 1.0]))
    prep = fit_preprocessing(events, max_len=5, min_count=1)
    raw = static_features(events, prep.static_spec)
    column = {name: raw[:, i] for i, name in enumerate(prep.feature_names)}
    assert column["has_events"].tolist() == [1, 0, 1, 1]
    assert column["log_recency_days"][0] == pytest.approx(np.log1p(2.0))
    assert column["log_n_events"].tolist() == pytest.approx(np.log1p([3, 0, 5, 1]).tolist())
    assert column["log_n_purchases"][0] == pytest.approx(np.log1p(1))
    assert column["log_monetary"][0] == pytest.approx(np.log1p(20.0))  # 10 x quantity 2
    assert column["log_tenure_days"][2] == pytest.approx(np.log1p(9.0))
    assert column["log_n_view_7d"][2] == pytest.approx(np.log1p(3))  # 7, 6 and 5 days ago
    assert column["log_n_view_30d"][2] == pytest.approx(np.log1p(5))
    assert column["attr_age"][1] != column["attr_age"][1]  # NaN stays NaN before normalizing
    assert column["attr_city=sh"].tolist() == [1, 0, 1, 1]


def test_normalizer_uses_training_rows_and_fills_missing_with_the_mean():
    x = np.array([[1.0, np.nan], [3.0, 4.0], [100.0, 8.0]])
    normalizer = Normalizer.fit(x[:2], ["a", "b"])
    assert normalizer.mean.tolist() == [2.0, 4.0]
    z = normalizer.transform(x)
    assert z.dtype == np.float32
    assert z[:2, 0].tolist() == [-1.0, 1.0]
    assert z[0, 1] == 0.0  # missing -> the training mean
    assert z[2, 0] == 10.0  # clipped
    assert Normalizer.from_json(normalizer.to_json()).transform(x).tolist() == z.tolist()


def test_preprocessing_fitted_on_training_customers_only_and_round_trips():
    events = hand_events()
    prep = fit_preprocessing(events, [0, 1], max_len=6, min_count=1)
    assert prep.vocabulary.categories == ("", OTHER_CATEGORY, "tea")
    again = Preprocessing.from_dict(prep.to_dict())
    a, b = transform(events, prep), transform(events, again)
    assert (a.tokens == b.tokens).all() and np.array_equal(a.static, b.static)
    assert a.static.shape == (4, len(prep.feature_names)) and np.isfinite(a.static).all()


def test_subset_renumbers_customers():
    events = hand_events()
    vocab = Vocabulary.fit(events, min_count=1)
    part = events.subset(np.array([2, 3]))
    assert part.n_customers == 2 and part.attributes["age"].tolist() == [50.0, 40.0]
    full = build_sequences(events, vocab)
    assert (build_sequences(part, vocab).tokens == full.tokens[[2, 3]]).all()
