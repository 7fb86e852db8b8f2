"""Training the uplift network on a randomized (or propensity-logged) experiment.

``train_uplift_model`` takes the behaviour events (``EventArrays``) and the treatment log
(``TreatmentArrays``), splits the treated customers into training and validation (customer
level, random, seeded), fits the preprocessing on the training customers only, trains with early
stopping on the validation loss (best weights restored), fine-tunes the per-arm uplift deltas
alone with early stopping of their own (``TrainingConfig.uplift_epochs``) and returns a
``TrainedModel`` bundle. Training data stays in memory as numpy arrays and goes through
``model.fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import keras
import numpy as np

from modeling.network import (
    CONVERSION,
    ORDER_VALUE,
    ArmHeads,
    SequenceMask,
    build_uplift_network,
    compile_uplift_network,
    fit_targets,
    head_layers,
    model_input_names,
)
from modeling.sequences import EventArrays, ModelInputs, Preprocessing, fit_preprocessing, transform
from modeling.training_config import CONTROL, TrainingConfig, TreatmentArrays

__all__ = [
    "CONTROL",
    "TrainedModel",
    "TrainingConfig",
    "TreatmentArrays",
    "customer_split",
    "prepare_training_data",
    "train_uplift_model",
]

ProgressCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainedModel:
    """What training produces and scoring needs: the network and everything fitted with it."""

    model: keras.Model
    preprocessing: Preprocessing
    arms: tuple[str, ...]
    config: TrainingConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    # Duan's smearing factor: E[value] = exp(predicted log value) x smearing.
    order_value_smearing: float = 1.0
    n_train: int = 0
    n_validation: int = 0
    # Encoder pretraining: epochs' logs, baseline_loss, gain over the base rates, frozen.
    pretraining: dict[str, Any] = field(default_factory=dict)
    # Fine-tuning of the per-arm deltas: epochs' logs, best_epoch (1-based; 0 = none beat the
    # main fit, whose weights were kept), val_loss_before.
    fine_tuning: dict[str, Any] = field(default_factory=dict)

    @property
    def vocabulary(self):
        return self.preprocessing.vocabulary

    @property
    def normalizer(self):
        return self.preprocessing.normalizer

    @property
    def feature_names(self) -> list[str]:
        return self.preprocessing.feature_names

    @property
    def has_revenue_head(self) -> bool:
        return ORDER_VALUE in self.model.output_names


def customer_split(customer_index: np.ndarray, validation_share: float, seed: int) -> np.ndarray:
    """Boolean mask over rows: True for rows of customers drawn into validation (all rows of a
    customer land on the same side)."""
    customers, inverse = np.unique(np.asarray(customer_index), return_inverse=True)
    rng = np.random.default_rng(seed)
    n_validation = round(validation_share * len(customers))
    chosen = np.zeros(len(customers), dtype=bool)
    chosen[rng.permutation(len(customers))[:n_validation]] = True
    return chosen[inverse]


def _inputs_for_rows(
    events: EventArrays, preprocessing: Preprocessing, customer_index: np.ndarray
) -> ModelInputs:
    """Model inputs per treatment row (customers with several rows repeat)."""
    customers, inverse = np.unique(customer_index, return_inverse=True)
    if len(customers) == events.n_customers:
        return transform(events, preprocessing).take(customer_index)
    return transform(events.subset(customers), preprocessing).take(inverse)


def _targets(
    treatments: TreatmentArrays, arm: np.ndarray, weight: np.ndarray, revenue_head: bool
) -> dict[str, np.ndarray]:
    converted = treatments.converted.astype(np.float32)
    y = {CONVERSION: np.stack([converted, arm, weight], axis=1).astype(np.float32)}
    if revenue_head:
        assert treatments.revenue is not None
        value = np.where(treatments.converted, treatments.revenue, np.nan)
        valid = treatments.converted & np.isfinite(value) & (value > 0)
        log_value = np.where(valid, np.log(np.where(valid, value, 1.0)), 0.0)
        y[ORDER_VALUE] = np.stack(
            [valid.astype(np.float32), arm, weight, log_value], axis=1
        ).astype(np.float32)
    return y


def prepare_training_data(
    events: EventArrays,
    treatments: TreatmentArrays,
    config: TrainingConfig,
    *,
    arms: Sequence[str] | None = None,
    validation: np.ndarray | None = None,
) -> dict[str, Any]:
    """The training job's data step: split, fit preprocessing on the training customers, build
    inputs and targets. Returned as a dict (used by ``train_uplift_model`` and the benchmark)."""
    arms = tuple(arms) if arms is not None else treatments.resolved_arms()
    if arms[0] != CONTROL:
        raise ValueError(f"arm 0 must be {CONTROL!r}, got {arms[0]!r}")
    arm = treatments.arm_codes(arms)
    if validation is None:
        validation = customer_split(treatments.customer_index, config.validation_share, config.seed)
    validation = np.asarray(validation, dtype=bool)
    train = ~validation
    if not train.any() or not validation.any():
        raise ValueError("both the training and the validation split need rows")
    preprocessing = fit_preprocessing(
        events,
        np.unique(treatments.customer_index[train]),
        max_len=config.max_len,
        n_price_buckets=config.n_price_buckets,
        min_count=config.min_count,
    )
    inputs = _inputs_for_rows(events, preprocessing, treatments.customer_index)
    propensity = (
        np.full(len(treatments), 1.0 / len(arms))
        if treatments.propensity is None
        else treatments.propensity
    )
    weight = 1.0 / propensity
    weight = weight / weight[train].mean()
    revenue_head = config.revenue_head and treatments.revenue is not None
    y = _targets(treatments, arm.astype(np.float32), weight.astype(np.float32), revenue_head)
    return {
        "arms": arms,
        "preprocessing": preprocessing,
        "inputs": inputs,
        "y": y,
        "train": train,
        "validation": validation,
        "revenue_head": revenue_head,
    }


def build_model_for(
    preprocessing: Preprocessing, n_arms: int, config: TrainingConfig, revenue_head: bool
) -> keras.Model:
    model = build_uplift_network(
        vocab_size=preprocessing.vocabulary.size,
        n_static=len(preprocessing.feature_names),
        n_arms=n_arms,
        preset=config.preset,
        use_sequence=config.use_sequence,
        revenue_head=revenue_head,
        embedding_dim=config.embedding_dim,
        dense_units=config.dense_units,
        head_units=config.head_units,
        dropout=config.dropout,
        delta_l2=config.delta_l2,
        sequence_dropout=config.sequence_dropout,
        members=config.members,
        control_delta=config.control_delta,
    )
    return _compile(model, n_arms, config)


def _compile(model: keras.Model, n_arms: int, config: TrainingConfig) -> keras.Model:
    return compile_uplift_network(
        model,
        n_arms=n_arms,
        learning_rate=config.learning_rate,
        revenue_loss_weight=config.revenue_loss_weight,
        jit_compile=config.jit_compile,
    )


def freeze_encoder(model: keras.Model, n_arms: int, config: TrainingConfig) -> keras.Model:
    """Stop training the sequence encoder (token embedding and LSTM), as after a pretraining
    that beat the base rates; recompiled so that the trainable flags take effect."""
    for layer in model.layers:
        if layer.name == "token_embedding" or layer.name.startswith("lstm_"):
            layer.trainable = False
    return _compile(model, n_arms, config)


_PRETRAIN_TARGETS = ("purchase", "cart", "view")
PRETRAIN_VALIDATION_SHARE = 0.1
# The encoder is frozen after pretraining only when pretraining beat the base rates by this
# relative margin; otherwise (histories too short to say anything about the last days, as in
# a shop that opened last week) it goes on learning from the treatment outcomes.
MIN_PRETRAIN_GAIN = 0.01


def pretraining_data(
    events: EventArrays, preprocessing: Preprocessing, config: TrainingConfig
) -> tuple[ModelInputs, np.ndarray] | None:
    """Inputs as of ``horizon`` days before the assignment and, per customer, whether they
    purchased / carted / viewed in those last days. None when the events cannot say."""
    if events.n_customers > config.pretrain_max_customers:
        rng = np.random.default_rng(config.seed + 7)
        sample = rng.choice(events.n_customers, config.pretrain_max_customers, replace=False)
        events = events.subset(np.sort(sample))
    cut = events.as_of - config.pretrain_horizon_days * 86_400
    if events.event_type.dtype.kind in "iu":
        names = list(events.event_type_names or ())
        hit = [
            events.event_type == (names.index(t) if t in names else -1) for t in _PRETRAIN_TARGETS
        ]
    else:
        hit = [events.event_type == t for t in _PRETRAIN_TARGETS]
    window = (events.timestamp >= cut) & (events.timestamp < events.as_of)
    if not window.any():
        return None
    labels = np.stack(
        [
            np.bincount(events.customer_index[window & h], minlength=events.n_customers) > 0
            for h in hit
        ],
        axis=1,
    ).astype(np.float32)
    inputs = transform(replace(events, as_of=cut), preprocessing)
    return inputs, labels


def _pretrain_encoder(
    model: keras.Model,
    events: EventArrays,
    preprocessing: Preprocessing,
    config: TrainingConfig,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train the uplift network's sequence encoder (and shared trunk) on the last days'
    behaviour through a throwaway head; the uplift network keeps the trained layers.

    Returns the epochs' logs and ``gain``: how much lower the validation loss got than that of
    predicting the base rates (0 = the history told nothing about the last days)."""
    data = pretraining_data(events, preprocessing, config)
    if data is None:
        return {"epochs": [], "baseline_loss": 0.0, "gain": 0.0}
    inputs, labels = data
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    gaps = keras.Input(shape=(None, 2), dtype="float32", name="gaps")
    static = keras.Input(shape=(len(preprocessing.feature_names),), dtype="float32", name="static")
    mask = SequenceMask()(tokens)
    hidden = keras.layers.Concatenate()([model.get_layer("token_embedding")(tokens), gaps])
    lstms = [layer for layer in model.layers if layer.name.startswith("lstm_")]
    for layer in lstms:
        hidden = layer(hidden, mask=mask)
    trunk = model.get_layer("shared_dense")(keras.layers.Concatenate()([hidden, static]))
    logits = keras.layers.Dense(len(_PRETRAIN_TARGETS), name="pretrain_head")(trunk)
    pretrain = keras.Model({"tokens": tokens, "gaps": gaps, "static": static}, logits)
    pretrain.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=config.jit_compile,
    )
    x = inputs.as_keras()
    clock = _EpochClock()
    fitted = pretrain.fit(
        {k: x[k] for k in ("tokens", "gaps", "static")},
        labels,
        epochs=config.pretrain_epochs,
        batch_size=config.batch_size,
        validation_split=PRETRAIN_VALIDATION_SHARE,
        shuffle=True,
        verbose=0,
        callbacks=[clock, *([_Progress(progress, clock)] if progress is not None else [])],
    )
    epochs = [
        {k: float(v[epoch]) for k, v in fitted.history.items()}
        for epoch in range(len(fitted.history.get("loss", [])))
    ]
    # What predicting every customer at the training base rates would score on the same
    # validation rows (Keras holds out the last rows, before shuffling).
    n_fit = int(len(labels) * (1 - PRETRAIN_VALIDATION_SHARE))
    rate = np.clip(labels[:n_fit].mean(axis=0), 1e-6, 1 - 1e-6)
    held = labels[n_fit:]
    baseline = float(-np.mean(held * np.log(rate) + (1 - held) * np.log(1 - rate)))
    best = min((e.get("val_loss", np.inf) for e in epochs), default=np.inf)
    gain = 1.0 - best / baseline if baseline > 0 else 0.0
    return {"epochs": epochs, "baseline_loss": baseline, "gain": float(gain)}


def _initialize_base(model: keras.Model, y: dict[str, np.ndarray], train: np.ndarray) -> None:
    """Start the shared base of each head at the training mean: a logit of the conversion rate
    and the mean log order value, so the first epochs learn structure, not the intercept."""
    conv = y[CONVERSION][train]
    rate = np.clip(np.average(conv[:, 0], weights=conv[:, 2]), 1e-4, 1 - 1e-4)
    for layer in head_layers(model, CONVERSION):
        layer.base_bias.assign(np.array([np.log(rate / (1 - rate))]))
    if ORDER_VALUE in y:
        value = y[ORDER_VALUE][train]
        valid = value[:, 0] > 0
        if valid.any():
            mean = np.average(value[valid, 3], weights=value[valid, 2])
            for layer in head_layers(model, ORDER_VALUE):
                layer.base_bias.assign(np.array([mean], dtype=np.float32))


class _EpochClock(keras.callbacks.Callback):
    """Wall time per epoch, and of its training part alone (before validation starts)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.train_seconds: list[float] = []
        self._start = 0.0
        self._train_end: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.seconds.append(end - self._start)
        self.train_seconds.append((self._train_end or end) - self._start)


class _Progress(keras.callbacks.Callback):
    def __init__(self, progress: ProgressCallback, clock: _EpochClock) -> None:
        super().__init__()
        self.progress = progress
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["seconds"] = self.clock.seconds[-1] if self.clock.seconds else float("nan")
        self.progress(epoch, logs)


def _fit_early_stopped(
    fit: Callable[..., Any],
    epochs: int,
    patience: int,
    progress: ProgressCallback | None = None,
) -> list[dict[str, float]]:
    """Run ``fit(callbacks, epochs)`` with early stopping on the validation loss (the best
    epoch's weights restored) and return one record per epoch: the Keras logs, the epoch's
    wall ``seconds`` and ``train_seconds`` (its training part, before validation)."""
    clock = _EpochClock()
    callbacks: list[keras.callbacks.Callback] = [
        clock,
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True
        ),
    ]
    if progress is not None:
        callbacks.append(_Progress(progress, clock))
    logs = fit(callbacks, epochs).history
    return [
        {
            "epoch": epoch,
            **{k: float(v[epoch]) for k, v in logs.items()},
            "seconds": clock.seconds[epoch],
            "train_seconds": clock.train_seconds[epoch],
        }
        for epoch in range(len(logs.get("loss", [])))
    ]


def _smearing(
    model: keras.Model,
    inputs: ModelInputs,
    y: dict[str, np.ndarray],
    rows: np.ndarray,
    batch_size: int,
) -> float:
    value = y[ORDER_VALUE][rows]
    valid = value[:, 0] > 0
    if valid.sum() < 20:
        return 1.0
    x = inputs.take(np.flatnonzero(rows)[valid]).as_keras()
    x = {k: x[k] for k in model_input_names(model)}
    predicted = model.predict(x, batch_size=batch_size, verbose=0)[ORDER_VALUE]
    arm = value[valid, 1].astype(np.int64)
    residual = value[valid, 3] - predicted[np.arange(len(arm)), arm]
    return float(np.average(np.exp(np.clip(residual, -5, 5)), weights=value[valid, 2]))


def _fine_tune_uplift(
    model: keras.Model,
    fit: Callable[..., Any],
    n_arms: int,
    config: TrainingConfig,
    val_loss_before: float,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train only the per-arm deltas (the uplift) from the main fit's best weights, with a fresh
    optimizer and early stopping of its own; everything else (encoder, trunk, the shared base
    of every head) stays as it is. Keeps the main fit's weights if no epoch beats its
    validation loss. ``fit(callbacks, epochs)`` runs ``model.fit`` on the training data."""
    before = model.get_weights()
    trainable = [(layer, layer.trainable) for layer in model.layers]
    for layer in model.layers:
        if isinstance(layer, ArmHeads):
            layer.base_kernel.trainable = False
            layer.base_bias.trainable = False
        elif layer.weights:
            layer.trainable = False
    _compile(model, n_arms, config)
    try:
        epochs = _fit_early_stopped(fit, config.uplift_epochs, config.uplift_patience, progress)
    finally:
        for layer, flag in trainable:
            layer.trainable = flag
        for layer in model.layers:
            if isinstance(layer, ArmHeads):
                layer.base_kernel.trainable = True
                layer.base_bias.trainable = True
    best = int(np.argmin([e["val_loss"] for e in epochs])) if epochs else -1
    if best < 0 or not epochs[best]["val_loss"] < val_loss_before:
        model.set_weights(before)
        best = -1
    return {"epochs": epochs, "best_epoch": best + 1, "val_loss_before": float(val_loss_before)}


def train_uplift_model(
    inputs: EventArrays,
    treatments: TreatmentArrays,
    config: TrainingConfig | None = None,
    *,
    arms: Sequence[str] | None = None,
    validation: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    pretrain_progress: ProgressCallback | None = None,
    fine_tune_progress: ProgressCallback | None = None,
) -> TrainedModel:
    """Train the uplift network on the treatment log.

    ``validation`` (bool per treatment row) overrides the seeded customer-level split, so that
    baselines can be trained on exactly the same split. ``progress(epoch, logs)`` is called after
    every epoch with the Keras logs plus ``seconds``; ``pretrain_progress`` likewise after every
    epoch of the encoder's pretraining, ``fine_tune_progress`` after every epoch of the uplift
    fine-tuning."""
    config = config or TrainingConfig()
    keras.utils.set_random_seed(config.seed)
    data = prepare_training_data(inputs, treatments, config, arms=arms, validation=validation)
    model_inputs: ModelInputs = data["inputs"]
    y, train, val = data["y"], data["train"], data["validation"]
    arms = data["arms"]
    model = build_model_for(data["preprocessing"], len(arms), config, data["revenue_head"])
    pretraining: dict[str, Any] = {}
    if config.use_sequence and config.pretrain_epochs > 0:
        pretraining = _pretrain_encoder(
            model, inputs, data["preprocessing"], config, pretrain_progress
        )
        pretraining["frozen"] = config.freeze_encoder and pretraining["gain"] >= MIN_PRETRAIN_GAIN
        if pretraining["frozen"]:
            freeze_encoder(model, len(arms), config)
        else:
            _compile(model, len(arms), config)
    _initialize_base(model, y, train)
    names = model_input_names(model)

    def x_of(rows: np.ndarray) -> dict[str, np.ndarray]:
        x = model_inputs.take(rows).as_keras()
        return {k: x[k] for k in names}

    train_rows, val_rows = np.flatnonzero(train), np.flatnonzero(val)
    x_train, x_val = x_of(train_rows), x_of(val_rows)
    y_train = fit_targets(model, {k: v[train_rows] for k, v in y.items()})
    y_val = fit_targets(model, {k: v[val_rows] for k, v in y.items()})

    def fit(callbacks: list[keras.callbacks.Callback], epochs: int):
        return model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=epochs,
            batch_size=config.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )

    history = _fit_early_stopped(fit, config.epochs, config.patience, progress)
    best_epoch = int(np.argmin([h["val_loss"] for h in history])) if history else 0
    fine_tuning: dict[str, Any] = {}
    if config.uplift_epochs > 0 and history:
        fine_tuning = _fine_tune_uplift(
            model, fit, len(arms), config, history[best_epoch]["val_loss"], fine_tune_progress
        )
    smearing = 1.0
    if data["revenue_head"]:
        smearing = _smearing(model, model_inputs, y, val, config.batch_size * 8)
    return TrainedModel(
        model=model,
        preprocessing=data["preprocessing"],
        arms=tuple(arms),
        config=config,
        history=history,
        best_epoch=best_epoch,
        order_value_smearing=smearing,
        n_train=len(train_rows),
        n_validation=len(val_rows),
        pretraining=pretraining,
        fine_tuning=fine_tuning,
    )
