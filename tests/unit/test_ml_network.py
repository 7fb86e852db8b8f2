"""The uplift network, its training, scoring and artifacts. Plain functions, no database.

The planted effect: every customer has four events a day apart — three views and one cart of the
same item — so the static features (counts, recency, tenure) are identical for everyone and
only the ORDER tells customers apart. Customers whose last event is the cart respond to arm 1;
nobody responds to arm 2. The sequence model must find it on held-out customers; the same network
without the sequence encoder cannot.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from modeling import scoring
from modeling.artifacts import load_trained_model, save_trained_model
from modeling.network import (
    CONVERSION,
    ORDER_VALUE,
    ArmHeads,
    ReceivedArmBinaryCrossentropy,
    ReceivedArmLogValueError,
    build_uplift_network,
    compile_uplift_network,
    fit_targets,
    model_input_names,
)
from modeling.scoring import length_batches, predict
from modeling.sequences import EventArrays, fit_preprocessing, transform
from modeling.training import (
    MIN_PRETRAIN_GAIN,
    TrainingConfig,
    TreatmentArrays,
    _fine_tune_uplift,
    customer_split,
    pretraining_data,
    train_uplift_model,
)

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
AS_OF = 20_000 * DAY
ARMS = ("control", "cart_nudge", "dud")
CORE_MODULES = (
    "sequences",
    "network",
    "training_config",
    "training",
    "scoring",
    "metrics",
    "baselines",
    "artifacts",
)


def planted(n: int, seed: int) -> tuple[EventArrays, np.ndarray, TreatmentArrays]:
    rng = np.random.default_rng(seed)
    cart_at = rng.integers(0, 4, n)  # position of the cart among the four events
    customer = np.repeat(np.arange(n), 4)
    position = np.tile(np.arange(4), n)
    timestamp = AS_OF - (4 - position) * DAY + rng.integers(0, 600, 4 * n)
    event_type = np.where(position == cart_at[customer], "cart", "view").astype(object)
    events = EventArrays(
        customer_index=customer,
        timestamp=timestamp,
        event_type=event_type,
        category=np.full(4 * n, "tea", dtype=object),
        price=np.full(4 * n, 20.0),
        n_customers=n,
        as_of=AS_OF,
    )
    cart_last = cart_at == 3
    arm = rng.integers(0, 3, n)
    p = np.where((arm == 1) & cart_last, 0.6, 0.1)
    converted = rng.random(n) < p
    revenue = np.where(converted, np.exp(rng.normal(4.0, 0.3, n)) * (1 + 0.5 * (arm == 2)), 0.0)
    treatments = TreatmentArrays(
        customer_index=np.arange(n),
        arm=np.array(ARMS)[arm],
        converted=converted,
        propensity=np.full(n, 1 / 3),
        revenue=revenue,
    )
    return events, cart_last, treatments


CONFIG = TrainingConfig(
    epochs=12,
    batch_size=128,
    learning_rate=5e-3,
    patience=4,
    max_len=6,
    embedding_dim=8,
    dense_units=16,
    head_units=8,
    dropout=0.0,
    sequence_dropout=0.0,
    seed=3,
    min_count=1,
    # One member: these tests are about one network's mechanics (the members have tests of
    # their own below), and the default's five would double this file's time.
    members=1,
)


@pytest.fixture(scope="module")
def trained():
    events, _, treatments = planted(2400, seed=1)
    epochs_seen = []
    bundle = train_uplift_model(
        events, treatments, CONFIG, arms=ARMS, progress=lambda e, logs: epochs_seen.append(e)
    )
    return bundle, epochs_seen


def test_training_recovers_a_planted_sequence_effect_on_held_out_customers(trained):
    bundle, epochs_seen = trained
    events, cart_last, _ = planted(1500, seed=2)  # customers never seen in training
    uplift = predict(bundle, events).conversion_uplift()
    effect = uplift[cart_last, 1].mean() - uplift[~cart_last, 1].mean()
    assert effect > 0.25  # true: 0.5
    assert abs(uplift[:, 2].mean()) < 0.08  # the dud arm does nothing
    assert epochs_seen == list(range(len(bundle.history)))
    assert {"loss", "val_loss", "seconds"} <= set(bundle.history[0])


def test_the_static_only_network_cannot_see_the_order():
    events, _, treatments = planted(2400, seed=1)
    config = TrainingConfig(**{**CONFIG.to_dict(), "use_sequence": False, "epochs": 6})
    bundle = train_uplift_model(events, treatments, config, arms=ARMS)
    assert [t.name for t in bundle.model.inputs] == ["static"]
    test_events, cart_last, _ = planted(1500, seed=2)
    uplift = predict(bundle, test_events).conversion_uplift()
    assert abs(uplift[cart_last, 1].mean() - uplift[~cart_last, 1].mean()) < 0.1


def test_revenue_head_predicts_order_value_per_arm(trained):
    bundle, _ = trained
    events, _, _ = planted(300, seed=4)
    value = predict(bundle, events).order_value
    assert value.shape == (300, 3) and np.isfinite(value).all()
    # arm 2's baskets are 1.5 x larger (E[exp(N(4, 0.3))] ~ 57 otherwise)
    assert 45 < value[:, 0].mean() < 70
    assert value[:, 2].mean() / value[:, 0].mean() > 1.25


def test_customers_without_events_get_finite_predictions(trained):
    bundle, _ = trained
    empty = EventArrays(
        customer_index=np.array([], dtype=np.int64),
        timestamp=np.array([], dtype=np.int64),
        event_type=np.array([], dtype=object),
        category=np.array([], dtype=object),
        price=np.array([]),
        n_customers=3,
        as_of=AS_OF,
    )
    scored = predict(bundle, empty)
    assert scored.p_convert.shape == (3, 3) and np.isfinite(scored.p_convert).all()
    assert np.isfinite(scored.order_value).all()


def test_save_and_load_give_identical_predictions(trained, tmp_path):
    bundle, _ = trained
    events, _, _ = planted(200, seed=5)
    target = tmp_path / "models" / "v1"
    save_trained_model(bundle, target)
    save_trained_model(bundle, target)  # replacing an existing artifact works too
    assert sorted(p.name for p in target.iterdir()) == ["model.keras", "preprocessing.json"]
    assert [p.name for p in target.parent.iterdir()] == ["v1"]  # no temp dirs left behind
    loaded = load_trained_model(target)
    before, after = predict(bundle, events), predict(loaded, events)
    assert np.array_equal(before.p_convert, after.p_convert)
    assert np.array_equal(before.order_value, after.order_value)
    assert loaded.arms == ARMS and loaded.config == bundle.config
    assert loaded.feature_names == bundle.feature_names


def _tiny_batch(rng, n=8):
    x = {
        "tokens": rng.integers(1, 5, size=(n, 4)).astype("int32"),
        "gaps": rng.random((n, 4, 2)).astype("float32"),
        "static": rng.random((n, 3)).astype("float32"),
    }
    converted = rng.integers(0, 2, size=n).astype("float32")
    arm = rng.integers(0, 3, size=n).astype("float32")
    weight = np.ones(n, dtype="float32")
    y = {
        CONVERSION: np.column_stack([converted, arm, weight]),
        ORDER_VALUE: np.column_stack([converted, arm, weight, rng.normal(3, 1, size=n)]),
    }
    return x, {k: v.astype("float32") for k, v in y.items()}


def test_with_a_control_delta_control_rows_teach_control_s_own_delta_and_no_coupon_s():
    # Control has a delta of its own beside every coupon's: a batch of control rows alone moves
    # the shared base and control's delta, and leaves every coupon's delta as it was.
    model = build_uplift_network(
        vocab_size=5, n_static=3, n_arms=3, dropout=0.0, delta_l2=0.0, control_delta=True
    )
    compile_uplift_network(model, n_arms=3, jit_compile=False)
    heads = model.get_layer(CONVERSION)
    assert heads.delta_kernel.shape[0] == 3  # control and both coupons
    rng = np.random.default_rng(5)
    heads.delta_kernel.assign(rng.normal(size=heads.delta_kernel.shape))
    x, y = _tiny_batch(rng, n=64)
    for values in y.values():
        values[:, 1] = 0  # every row received control
    before = {w.name: w.numpy() for w in heads.weights}
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    after = {w.name: w.numpy() for w in heads.weights}
    for name in ("hidden_kernel", "hidden_bias", "delta_kernel", "delta_bias"):
        assert not np.array_equal(before[name][0], after[name][0]), name
        assert np.array_equal(before[name][1:], after[name][1:]), name
    assert not np.array_equal(before["base_bias"], after["base_bias"])
    # the uplift is delta_a - delta_0 (the base cancels)
    trunk = keras.Model(model.inputs, model.get_layer("shared_dense").output)
    hidden = np.asarray(trunk.predict(x, verbose=0))
    logits = np.asarray(model.predict(x, verbose=0)[CONVERSION])
    h = np.einsum("nd,adh->nah", hidden, after["hidden_kernel"]) + after["hidden_bias"]
    h = np.maximum(h, 0.0)
    delta = (h * after["delta_kernel"]).sum(-1) + after["delta_bias"]
    np.testing.assert_allclose(
        logits[:, 1:] - logits[:, :1], delta[:, 1:] - delta[:, :1], rtol=1e-4, atol=1e-4
    )


def test_heads_saved_before_the_control_delta_existed_keep_control_as_the_base():
    config = ArmHeads(3, hidden_units=4, control_delta=True).get_config()
    del config["control_delta"]  # as a model trained before it stored its layers
    heads = ArmHeads.from_config(config)
    x = np.random.default_rng(6).random((5, 7)).astype("float32")
    heads(x)
    assert heads.delta_kernel.shape[0] == 2  # the coupons only
    heads.delta_kernel.assign(np.ones(heads.delta_kernel.shape))
    out = np.asarray(heads(x))
    base = x @ heads.base_kernel.numpy() + heads.base_bias.numpy()
    np.testing.assert_allclose(out[:, :1], base, rtol=1e-5, atol=1e-6)
    assert TrainingConfig.from_dict({"epochs": 3}).control_delta is TrainingConfig().control_delta


def test_members_are_trained_apart_and_served_as_their_average():
    model = build_uplift_network(vocab_size=5, n_static=3, n_arms=3, members=3, dropout=0.0)
    compile_uplift_network(model, n_arms=3, revenue_loss_weight=0.2)
    heads = [f"{h}_{m}" for h in (CONVERSION, ORDER_VALUE) for m in range(3)]
    assert set(model.output_names) == {CONVERSION, ORDER_VALUE, *heads}
    assert set(model.loss) == set(heads)  # the losses train every member's own outputs
    rng = np.random.default_rng(0)
    for layer in model.layers:  # deltas start at zero: give them something to average
        if layer.name.startswith((CONVERSION, ORDER_VALUE)) and hasattr(layer, "delta_kernel"):
            layer.delta_kernel.assign(rng.normal(size=layer.delta_kernel.shape))
    x, _ = _tiny_batch(rng)
    out = model.predict(x, verbose=0)
    for head in (CONVERSION, ORDER_VALUE):
        members = np.stack([out[f"{head}_{m}"] for m in range(3)])
        assert not np.allclose(members[0], members[1])  # initialized apart
        np.testing.assert_allclose(out[head], members.mean(axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="members"):
        build_uplift_network(vocab_size=5, n_static=3, n_arms=3, members=0)


def test_members_share_a_head_s_loss_weight_so_the_loss_keeps_a_single_network_s_scale():
    # Three identical members must report exactly the loss of the one network they copy: each
    # member's outputs carry a third of the head's weight (and revenue keeps its 0.2).
    single = build_uplift_network(vocab_size=5, n_static=3, n_arms=3, dropout=0.0)
    triple = build_uplift_network(vocab_size=5, n_static=3, n_arms=3, members=3, dropout=0.0)
    rng = np.random.default_rng(1)
    for layer in single.layers:
        for w in layer.weights:
            w.assign(rng.normal(scale=0.3, size=w.shape))
    for layer in single.layers:
        if not layer.weights:
            continue
        for m in range(3):
            if layer.name in (CONVERSION, ORDER_VALUE):
                twin = f"{layer.name}_{m}"
            elif layer.name == "shared_dense":
                twin = f"shared_dense_{m}" if m else "shared_dense"
            elif m:
                continue  # the encoder is shared
            else:
                twin = layer.name
            triple.get_layer(twin).set_weights(layer.get_weights())
    for model in (single, triple):
        compile_uplift_network(model, n_arms=3, revenue_loss_weight=0.2)
    x, y = _tiny_batch(rng, n=64)
    loss_single = single.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    loss_triple = triple.evaluate(x, fit_targets(triple, y), verbose=0, return_dict=True)["loss"]
    assert loss_triple == pytest.approx(loss_single, rel=1e-5)
    assert loss_single > 0


def test_a_network_of_members_recovers_the_planted_effect_and_survives_saving(tmp_path):
    events, _, treatments = planted(2400, seed=1)
    config = TrainingConfig(**{**CONFIG.to_dict(), "members": 3})
    bundle = train_uplift_model(events, treatments, config, arms=ARMS)
    test_events, cart_last, _ = planted(1500, seed=2)
    scored = predict(bundle, test_events)
    uplift = scored.conversion_uplift()
    assert uplift[cart_last, 1].mean() - uplift[~cart_last, 1].mean() > 0.25  # true: 0.5
    assert abs(uplift[:, 2].mean()) < 0.08
    save_trained_model(bundle, tmp_path / "v1")
    loaded = load_trained_model(tmp_path / "v1")
    again = predict(loaded, test_events)
    assert np.array_equal(scored.p_convert, again.p_convert)
    assert np.array_equal(scored.order_value, again.order_value)
    assert loaded.config.members == 3


def _network_and_data(seed: int):
    """A compiled planted network, started from scratch, with its fit on planted rows."""
    events, _, treatments = planted(600, seed=seed)
    preprocessing = fit_preprocessing(events, np.arange(600), max_len=6, min_count=1)
    keras.utils.set_random_seed(seed)
    model = build_uplift_network(
        vocab_size=preprocessing.vocabulary.size,
        n_static=len(preprocessing.feature_names),
        n_arms=3,
        embedding_dim=8,
        dense_units=16,
        head_units=8,
    )
    compile_uplift_network(model, n_arms=3, jit_compile=False)
    x = transform(events, preprocessing).as_keras()
    x = {k: x[k] for k in model_input_names(model)}
    arm = treatments.arm_codes(ARMS).astype(np.float32)
    converted = treatments.converted.astype(np.float32)
    weight = np.ones(600, dtype=np.float32)
    y = {
        CONVERSION: np.stack([converted, arm, weight], axis=1),
        ORDER_VALUE: np.stack(
            [converted, arm, weight, np.log(np.maximum(treatments.revenue, 1.0))], axis=1
        ).astype(np.float32),
    }

    def fit(callbacks, epochs):
        return model.fit(
            x,
            y,
            validation_data=(x, y),
            epochs=epochs,
            batch_size=64,
            callbacks=callbacks,
            verbose=0,
        )

    return model, fit


def _weights_by_path(model) -> dict[str, np.ndarray]:
    return {v.path: v.numpy() for v in model.weights}


def _is_delta(path: str) -> bool:
    return any(
        part in path for part in ("hidden_kernel", "hidden_bias", "delta_kernel", "delta_bias")
    )


def test_fine_tuning_moves_only_the_coupon_effects():
    model, fit = _network_and_data(seed=11)
    before = _weights_by_path(model)
    flags = {layer.name: layer.trainable for layer in model.layers}
    seen = []
    result = _fine_tune_uplift(
        model, fit, 3, CONFIG, np.inf, progress=lambda e, logs: seen.append(e)
    )
    after = _weights_by_path(model)
    assert result["best_epoch"] >= 1 and len(result["epochs"]) == len(seen) >= 1
    assert {"loss", "val_loss", "seconds"} <= set(result["epochs"][0])
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    assert moved and all(_is_delta(path) for path in moved)  # encoder, trunk, bases: untouched
    assert any("delta_kernel" in path for path in moved)
    # the layers and variables train again afterwards (a later fit is not left frozen)
    assert {layer.name: layer.trainable for layer in model.layers} == flags
    assert all(v.trainable for v in model.get_layer(CONVERSION).weights)


def test_fine_tuning_keeps_the_main_fit_when_no_epoch_beats_its_validation_loss():
    model, fit = _network_and_data(seed=12)
    before = _weights_by_path(model)
    result = _fine_tune_uplift(model, fit, 3, CONFIG, val_loss_before=-1.0)
    assert result["best_epoch"] == 0 and len(result["epochs"]) >= 1
    after = _weights_by_path(model)
    assert all(np.array_equal(before[path], after[path]) for path in before)


def test_training_fine_tunes_the_coupon_effects_and_saves_the_record(trained, tmp_path):
    bundle, _ = trained
    fine_tuning = bundle.fine_tuning
    assert fine_tuning["epochs"] and fine_tuning["best_epoch"] <= len(fine_tuning["epochs"])
    best = fine_tuning["best_epoch"]
    if best:
        assert fine_tuning["epochs"][best - 1]["val_loss"] < fine_tuning["val_loss_before"]
    save_trained_model(bundle, tmp_path / "v1")
    assert load_trained_model(tmp_path / "v1").fine_tuning == fine_tuning

    events, _, treatments = planted(400, seed=6)
    off = TrainingConfig(**{**CONFIG.to_dict(), "epochs": 2, "uplift_epochs": 0})
    assert train_uplift_model(events, treatments, off, arms=ARMS).fine_tuning == {}


def test_length_batches_cover_every_customer_once_within_its_width():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 51, size=1000)
    tokens = (np.arange(50)[None, :] < lengths[:, None]).astype(np.int32)
    rows_per_batch, groups = length_batches(tokens, batch_rows=128, width_step=16)
    assert rows_per_batch == 128
    seen = np.concatenate([rows for rows, _ in groups])
    assert np.array_equal(np.sort(seen), np.arange(1000))
    widths = [width for _, width in groups]
    # 48 is within one step of the padded length: such batches run at 50, one shape fewer
    assert widths == sorted(set(widths)) and set(widths) <= {16, 32, 50}
    for rows, width in groups:
        assert lengths[rows].max() <= width
    assert all(len(rows) % 128 == 0 for rows, _ in groups[:-1])
    assert length_batches(tokens[:100], batch_rows=128)[0] == 128  # the smallest power of two
    assert length_batches(tokens[:3], batch_rows=128)[0] == 64
    assert length_batches(tokens[:0])[1] == []


def test_predictions_in_length_batches_equal_the_whole_padded_network(trained, monkeypatch):
    bundle, _ = trained
    monkeypatch.setattr(scoring, "WIDTH_STEP", 1)
    events, _, _ = planted(300, seed=7)
    inputs = transform(events, bundle.preprocessing)
    # Customers cut to 0..4 events (right-padded, as the builder pads).
    keep = np.arange(inputs.tokens.shape[1])[None, :] < (np.arange(300) % 5)[:, None]
    inputs.tokens = np.where(keep, inputs.tokens, 0).astype(np.int32)
    inputs.gaps = np.where(keep[..., None], inputs.gaps, 0).astype(np.float32)
    x = inputs.as_keras()
    whole = bundle.model.predict(
        {k: x[k] for k in model_input_names(bundle.model)}, batch_size=512, verbose=0
    )
    groups = length_batches(inputs.tokens, 64, 1)[1]
    assert [width for _, width in groups] == [1, 2, 3, 4]
    batched = predict(bundle, inputs, batch_size=64)  # several batches of several widths
    np.testing.assert_allclose(batched.p_convert, 1 / (1 + np.exp(-whole[CONVERSION])), atol=1e-5)


def test_scoring_sends_whole_batches_of_one_shape_per_width(trained, monkeypatch):
    """Every batch has the same number of rows (a short last batch is filled up), so the
    compiled predict step sees one shape per width. 150 customers of 0..4 events, sorted by
    length, at 64 rows per batch and width step 2: one batch of width 2 (the 64 shortest, 0-2
    events), then two of width 4, the last holding 22 customers filled up to 64."""
    bundle, _ = trained
    events, _, _ = planted(150, seed=7)
    inputs = transform(events, bundle.preprocessing)
    keep = np.arange(inputs.tokens.shape[1])[None, :] < (np.arange(150) % 5)[:, None]
    inputs.tokens = np.where(keep, inputs.tokens, 0).astype(np.int32)
    shapes = []
    step = bundle.model.predict_on_batch

    def recorded(x):
        shapes.append(x["tokens"].shape)
        return step(x)

    monkeypatch.setattr(bundle.model, "predict_on_batch", recorded)
    monkeypatch.setattr(scoring, "WIDTH_STEP", 2)
    predict(bundle, inputs, batch_size=64)
    assert shapes == [(64, 2), (64, 4), (64, 4)]


@pytest.mark.parametrize(("devices", "compiled"), [([], True), (["gpu:0"], False)])
def test_scoring_compiles_the_network_with_xla_on_a_cpu_and_leaves_a_gpu_to_cudnn(
    monkeypatch, devices, compiled
):
    model = build_uplift_network(vocab_size=4, n_static=3, n_arms=3, revenue_head=False)
    compile_uplift_network(model, n_arms=3, jit_compile=False)
    monkeypatch.setattr(keras.distribution, "list_devices", lambda kind=None: devices)
    assert scoring._serving(model).jit_compile is compiled


def test_a_failed_save_leaves_nothing(trained, tmp_path, monkeypatch):
    bundle, _ = trained

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle.model, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_trained_model(bundle, tmp_path / "v2")
    assert list(tmp_path.iterdir()) == []


def test_training_is_reproducible_with_a_seed():
    events, _, treatments = planted(400, seed=6)
    config = TrainingConfig(**{**CONFIG.to_dict(), "epochs": 2})
    first = train_uplift_model(events, treatments, config, arms=ARMS)
    second = train_uplift_model(events, treatments, config, arms=ARMS)
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]
    assert [h["val_loss"] for h in first.fine_tuning["epochs"]] == [
        h["val_loss"] for h in second.fine_tuning["epochs"]
    ]
    assert np.array_equal(predict(first, events).p_convert, predict(second, events).p_convert)


def history_predicts_last_week(n: int, seed: int) -> tuple[EventArrays, TreatmentArrays]:
    """Customers who carted three weeks ago buy in the last week before the assignment (90 %),
    the others rarely (10 %): what the encoder's pretraining task can learn."""
    rng = np.random.default_rng(seed)
    carted = rng.random(n) < 0.5
    bought = rng.random(n) < np.where(carted, 0.9, 0.1)
    rows = [(i, AS_OF - 30 * DAY, "view") for i in range(n)]
    rows += [(i, AS_OF - 21 * DAY, "cart" if carted[i] else "view") for i in range(n)]
    rows += [(i, AS_OF - 2 * DAY, "purchase") for i in np.flatnonzero(bought)]
    customer, timestamp, kind = (np.array(c) for c in zip(*sorted(rows), strict=True))
    events = EventArrays(
        customer_index=customer,
        timestamp=timestamp,
        event_type=kind.astype(object),
        category=np.full(len(customer), "tea", dtype=object),
        price=np.full(len(customer), 20.0),
        n_customers=n,
        as_of=AS_OF,
    )
    arm = rng.integers(0, 3, n)
    treatments = TreatmentArrays(
        customer_index=np.arange(n),
        arm=np.array(ARMS)[arm],
        converted=rng.random(n) < 0.2,
        revenue=np.full(n, 50.0),
    )
    return events, treatments


def test_pretraining_labels_what_each_customer_did_in_the_last_days():
    events, _ = history_predicts_last_week(40, seed=8)
    config = TrainingConfig(**{**CONFIG.to_dict(), "pretrain_horizon_days": 7})
    preprocessing = fit_preprocessing(events, np.arange(40), max_len=6, min_count=1)
    inputs, labels = pretraining_data(events, preprocessing, config)
    purchase, cart, view = labels.T
    bought = np.isin(np.arange(40), events.customer_index[events.event_type == "purchase"])
    assert np.array_equal(purchase.astype(bool), bought)
    assert not cart.any() and not view.any()  # carts and views are weeks old
    # The inputs are built as of the cut: the last week's purchases are not in them.
    assert (inputs.tokens > 0).sum(axis=1).max() == 2


def test_an_informative_pretraining_freezes_the_encoder_and_an_empty_one_does_not(trained):
    events, treatments = history_predicts_last_week(1200, seed=9)
    config = TrainingConfig(**{**CONFIG.to_dict(), "epochs": 2, "pretrain_epochs": 4})
    seen = []
    bundle = train_uplift_model(
        events, treatments, config, arms=ARMS, pretrain_progress=lambda e, logs: seen.append(e)
    )
    assert seen == [0, 1, 2, 3] and len(bundle.pretraining["epochs"]) == 4
    assert bundle.pretraining["gain"] > 0.2 and bundle.pretraining["frozen"]
    assert not bundle.model.get_layer("lstm_0").trainable
    assert not bundle.model.get_layer("token_embedding").trainable
    # In the planted data every event is in the last four days: nothing to learn before the
    # cut, so the encoder went on learning from the outcomes (and found the cart effect above).
    planted_bundle, _ = trained
    assert planted_bundle.pretraining["gain"] < MIN_PRETRAIN_GAIN
    assert not planted_bundle.pretraining["frozen"]
    assert planted_bundle.model.get_layer("lstm_0").trainable


def test_customer_split_keeps_customers_together():
    customers = np.repeat(np.arange(100), 3)
    validation = customer_split(customers, 0.2, seed=1)
    assert validation.sum() == 60
    per_customer = validation.reshape(100, 3)
    assert (per_customer.all(axis=1) | ~per_customer.any(axis=1)).all()
    assert np.array_equal(validation, customer_split(customers, 0.2, seed=1))


def test_losses_teach_only_the_received_arm():
    logits = np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -3.0]], dtype=np.float32)
    y = np.array([[1, 2, 1.0], [0, 0, 2.0]], dtype=np.float32)  # converted, arm, weight
    loss = float(ReceivedArmBinaryCrossentropy(3)(y, logits))

    def bce(logit, converted):
        p = 1 / (1 + np.exp(-logit))
        return -(converted * np.log(p) + (1 - converted) * np.log(1 - p))

    assert loss == pytest.approx((1.0 * bce(2.0, 1) + 2.0 * bce(0.0, 0)) / 2, rel=1e-5)
    changed = logits.copy()
    changed[0, :2] = 9.0  # heads of arms the rows did not receive
    changed[1, 1:] = -9.0
    assert float(ReceivedArmBinaryCrossentropy(3)(y, changed)) == pytest.approx(loss)
    # order value: only converted rows count
    y_value = np.array([[1, 1, 1.0, 3.0], [0, 2, 1.0, 7.0]], dtype=np.float32)
    value = float(ReceivedArmLogValueError(3)(y_value, logits))
    assert value == pytest.approx((3.0 - (-1.0)) ** 2 / 2)


@pytest.mark.parametrize(("preset", "widths"), [("small", [64]), ("large", [128, 128])])
def test_presets_use_cudnn_compatible_lstms(preset, widths):
    model = build_uplift_network(
        vocab_size=50, n_static=4, n_arms=3, preset=preset, revenue_head=False
    )
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert [layer.units for layer in lstms] == widths
    for layer in lstms:
        config = layer.get_config()
        assert config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid"
        assert config["recurrent_dropout"] == 0 and not config["unroll"] and config["use_bias"]
    embedding = model.get_layer("token_embedding")
    assert embedding.get_config()["mask_zero"]
    x = {
        "tokens": np.array([[3, 4, 0, 0, 0, 0, 0], [0] * 7], dtype=np.int32),
        "gaps": np.zeros((2, 7, 2), dtype=np.float32),
        "static": np.zeros((2, 4), dtype=np.float32),
    }
    out = model.predict(x, verbose=0)
    assert out["conversion"].shape == (2, 3) and np.isfinite(out["conversion"]).all()


def test_ml_core_imports_nothing_from_django():
    modules = ", ".join(f"modeling.{m}" for m in CORE_MODULES)
    code = (
        f"import sys; import {modules}; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_ml_core_uses_keras_apis_only():
    for module in CORE_MODULES:
        source = (ROOT / "modeling" / f"{module}.py").read_text()
        assert not re.search(r"\btf\.|import tensorflow|from tensorflow", source), module
