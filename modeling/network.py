"""The multi-arm uplift network, written with Keras 3 APIs only (keras.layers, keras.ops).

Inputs (one row per customer, see ``sequences.ModelInputs``): ``tokens`` int32 [L] right-padded
with 0, ``gaps`` float32 [L, 2], ``static`` float32 [F]. The sequence encoder is
Embedding(mask_zero=True) with the time-gap channels -> LSTM, in the settings the fused cuDNN
kernel needs (tanh / sigmoid, no recurrent dropout, not unrolled, with bias, right-padded mask);
the "small" preset (one LSTM(64)) keeps the CPU demo quick, the "large" preset (two stacked
LSTM(128), the seed model's encoder) is for GPU workers.

The representation, concatenated with the static features, feeds a shared Dense trunk and one
conversion head per arm (logits [n, A], arm 0 = control). Head a is ``base + delta_a``: the base
learns from every row, the L2-penalized deltas only from the rows of their arm. With
``control_delta`` (the default of new models) control has a delta of its own like every coupon,
and the uplift of arm a is ``delta_a - delta_0``, shrunk towards "no effect" where the data says
little. Without it (models trained before) ``delta_0 = 0``: control's head is the base itself,
which five coupon arms' rows out of six pull towards the coupons' average, so whatever
differs between customers in every coupon's effect alike lands in the base, where it cancels
out of the uplift. The optional revenue heads predict log order value given conversion per arm
the same way.

Losses and metrics live apart from the towers: each training row teaches only the head of the
arm it received. ``y`` carries (converted, arm index, sample weight[, log order value]) and the
loss gathers the received arm's output with a one-hot multiply-sum.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

__all__ = [
    "CONVERSION",
    "ORDER_VALUE",
    "PRESETS",
    "ArmHeads",
    "ReceivedArmAUC",
    "ReceivedArmBinaryCrossentropy",
    "ReceivedArmLogValueError",
    "SequenceMask",
    "build_uplift_network",
    "compile_uplift_network",
    "fit_targets",
    "head_layers",
    "member_outputs",
    "model_input_names",
]

CONVERSION = "conversion"  # output: logits [n, A]
ORDER_VALUE = "log_order_value"  # output: log expected order value given conversion [n, A]
# LSTM widths per preset, one entry per stacked layer.
PRESETS: dict[str, tuple[int, ...]] = {"small": (64,), "large": (128, 128)}
_PACKAGE = "promo_portal"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SequenceMask(layers.Layer):
    """``tokens != 0``, with the first step always on.

    A customer without events is then one padding step long rather than zero steps: the LSTM
    returns a well-defined state (not NaN, and never a zero-length sequence, which the fused
    cuDNN kernel rejects). The mask stays right-padded."""

    def call(self, tokens):
        steps = ops.shape(tokens)[1]
        first = ops.expand_dims(ops.equal(ops.arange(steps), 0), 0)
        return ops.logical_or(ops.not_equal(tokens, 0), first)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ArmHeads(layers.Layer):
    """One head per arm over a shared representation: ``out[:, a] = base + delta_a``.

    ``base`` is linear and shared by all arms; ``delta_a`` is arm a's own small tower
    (``hidden_units`` ReLU units, or linear when 0), for every arm with ``control_delta``,
    otherwise for the coupon arms only (a >= 1) with ``delta_0 = 0``."""

    def __init__(
        self,
        n_arms: int,
        hidden_units: int = 16,
        delta_l2: float = 1e-4,
        control_delta: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_arms = int(n_arms)
        self.hidden_units = int(hidden_units)
        self.delta_l2 = float(delta_l2)
        self.control_delta = bool(control_delta)

    def build(self, input_shape):
        width = int(input_shape[-1])
        n_deltas = self.n_arms if self.control_delta else self.n_arms - 1
        regularizer = keras.regularizers.L2(self.delta_l2) if self.delta_l2 else None
        self.base_kernel = self.add_weight(
            name="base_kernel", shape=(width, 1), initializer="glorot_uniform"
        )
        self.base_bias = self.add_weight(name="base_bias", shape=(1,), initializer="zeros")
        if self.hidden_units:
            self.hidden_kernel = self.add_weight(
                name="hidden_kernel",
                shape=(n_deltas, width, self.hidden_units),
                initializer="glorot_uniform",
                regularizer=regularizer,
            )
            self.hidden_bias = self.add_weight(
                name="hidden_bias", shape=(n_deltas, self.hidden_units), initializer="zeros"
            )
            out_shape = (n_deltas, self.hidden_units)
        else:
            out_shape = (n_deltas, width)
        self.delta_kernel = self.add_weight(
            name="delta_kernel", shape=out_shape, initializer="zeros", regularizer=regularizer
        )
        self.delta_bias = self.add_weight(name="delta_bias", shape=(n_deltas,), initializer="zeros")

    def call(self, x):
        base = ops.matmul(x, self.base_kernel) + self.base_bias  # [n, 1]
        if self.hidden_units:
            hidden = ops.relu(ops.einsum("nd,adh->nah", x, self.hidden_kernel) + self.hidden_bias)
            delta = ops.sum(hidden * self.delta_kernel, axis=-1)  # [n, A-1]
        else:
            delta = ops.matmul(x, ops.transpose(self.delta_kernel))
        delta = delta + self.delta_bias
        if self.control_delta:
            return base + delta
        return ops.concatenate([base, base + delta], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_arms)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "n_arms": self.n_arms,
            "hidden_units": self.hidden_units,
            "delta_l2": self.delta_l2,
            "control_delta": self.control_delta,
        }


def build_uplift_network(
    *,
    vocab_size: int,
    n_static: int,
    n_arms: int,
    preset: str = "small",
    use_sequence: bool = True,
    revenue_head: bool = True,
    embedding_dim: int = 32,
    dense_units: int = 64,
    head_units: int = 16,
    dropout: float = 0.1,
    delta_l2: float = 1e-4,
    sequence_dropout: float = 0.0,
    members: int = 1,
    control_delta: bool = False,
) -> keras.Model:
    """The uplift network (uncompiled). With ``use_sequence=False`` it sees the static features
    only: the baseline that shows what the sequence encoder adds.

    ``members`` > 1 puts that many independent trunk-and-heads members over the one sequence
    encoder: each member has its own outputs (``conversion_<m>``, ``log_order_value_<m>``), which
    the losses train separately, and ``conversion`` / ``log_order_value`` are their averages,
    which scoring serves. An uplift is a small difference of two noisy heads; averaging members
    that differ in initialization and dropout cuts that noise (see ``TrainingConfig``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    if n_arms < 2:
        raise ValueError("need control and at least one coupon arm")
    if members < 1:
        raise ValueError("members must be at least 1")
    static = keras.Input(shape=(n_static,), dtype="float32", name="static")
    inputs = {"static": static}
    parts = [static]
    if use_sequence:
        # Any length: scoring cuts a batch to its longest customer (scoring.length_batches).
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
        gaps = keras.Input(shape=(None, 2), dtype="float32", name="gaps")
        inputs = {"tokens": tokens, "gaps": gaps, "static": static}
        mask = SequenceMask(name="sequence_mask")(tokens)
        embedded = layers.Embedding(
            vocab_size, embedding_dim, mask_zero=True, name="token_embedding"
        )(tokens)
        hidden = layers.Concatenate(name="token_and_gaps")([embedded, gaps])
        widths = PRESETS[preset]
        for i, units in enumerate(widths):
            hidden = layers.LSTM(
                units,
                activation="tanh",
                recurrent_activation="sigmoid",
                recurrent_dropout=0.0,
                unroll=False,
                use_bias=True,
                dropout=sequence_dropout,  # on the inputs: the fused kernel still applies
                return_sequences=i < len(widths) - 1,
                name=f"lstm_{i}",
            )(hidden, mask=mask)
        if sequence_dropout:
            hidden = layers.Dropout(sequence_dropout, name="representation_dropout")(hidden)
        parts = [hidden, static]
    representation = (
        layers.Concatenate(name="representation_and_static")(parts) if len(parts) > 1 else static
    )
    heads: dict[str, list] = {CONVERSION: [], ORDER_VALUE: []}
    for m in range(members):
        suffix = f"_{m}" if m else ""
        trunk = layers.Dense(dense_units, activation="relu", name=f"shared_dense{suffix}")(
            representation
        )
        if dropout:
            trunk = layers.Dropout(dropout, name=f"shared_dropout{suffix}")(trunk)
        for head in (CONVERSION, ORDER_VALUE) if revenue_head else (CONVERSION,):
            name = f"{head}_{m}" if members > 1 else head
            # Each member's penalty counts a 1/members share too, as its loss does (compile).
            arm_heads = ArmHeads(
                n_arms, head_units, delta_l2 / members, control_delta=control_delta, name=name
            )
            heads[head].append(arm_heads(trunk))
    outputs = {}
    for head, tensors in heads.items():
        if not tensors:
            continue
        if members == 1:
            outputs[head] = tensors[0]
        else:
            outputs[head] = layers.Average(name=head)(tensors)
            outputs.update({f"{head}_{m}": t for m, t in enumerate(tensors)})
    name = "uplift_lstm" if use_sequence else "uplift_static"
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def model_input_names(model: keras.Model) -> list[str]:
    return [tensor.name for tensor in model.inputs]


def member_outputs(model: keras.Model, head: str) -> list[str]:
    """The outputs that the losses train for ``head``: the members' own, or the head itself in
    a network of one member."""
    names = [
        n for n in model.output_names if n.startswith(f"{head}_") and n[len(head) + 1 :].isdigit()
    ]
    return sorted(names, key=lambda n: int(n[len(head) + 1 :])) or (
        [head] if head in model.output_names else []
    )


def head_layers(model: keras.Model, head: str) -> list[ArmHeads]:
    """The ``ArmHeads`` layers of ``head``, one per member."""
    return [model.get_layer(name) for name in member_outputs(model, head)]


def fit_targets(model: keras.Model, y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The targets per output of ``model``: every member of a head (and the averaged head, for
    its metrics) learns from the same rows."""
    out = {}
    for head, values in y.items():
        for name in {head, *member_outputs(model, head)}:
            if name in model.output_names:
                out[name] = values
    return out


# ---------------------------------------------------------------------------------------------
# Losses and metrics: y = (converted, arm index, sample weight[, log order value])
# ---------------------------------------------------------------------------------------------
def _received(y_true, y_pred, n_arms: int):
    arm = ops.cast(y_true[:, 1], "int32")
    return ops.sum(y_pred * ops.one_hot(arm, n_arms, dtype=y_pred.dtype), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReceivedArmBinaryCrossentropy(keras.losses.Loss):
    """Weighted log loss of the received arm's conversion logit; other heads get no gradient."""

    def __init__(self, n_arms: int, name: str = "received_arm_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_arms = int(n_arms)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        logit = _received(y_true, y_pred, self.n_arms)
        converted, weight = y_true[:, 0], y_true[:, 2]
        # Stable log(1 + exp(-|x|)) form of the binary cross-entropy on logits.
        loss = ops.relu(logit) - logit * converted + ops.log1p(ops.exp(-ops.abs(logit)))
        return weight * loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_arms": self.n_arms}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReceivedArmLogValueError(keras.losses.Loss):
    """Weighted squared error of the received arm's log order value, on converted rows only."""

    def __init__(self, n_arms: int, name: str = "received_arm_log_value_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_arms = int(n_arms)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        predicted = _received(y_true, y_pred, self.n_arms)
        converted, weight, target = y_true[:, 0], y_true[:, 2], y_true[:, 3]
        return converted * weight * ops.square(target - predicted)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_arms": self.n_arms}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReceivedArmAUC(keras.metrics.AUC):
    """ROC AUC of the received arm's predicted conversion probability."""

    def __init__(self, n_arms: int, name: str = "received_arm_auc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_arms = int(n_arms)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, y_pred.dtype)
        probability = ops.sigmoid(_received(y_true, y_pred, self.n_arms))
        return super().update_state(y_true[:, 0], probability, sample_weight=y_true[:, 2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_arms": self.n_arms}


def compile_uplift_network(
    model: keras.Model,
    *,
    n_arms: int,
    learning_rate: float = 2e-3,
    revenue_loss_weight: float = 0.2,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    # Each member's outputs carry an equal share of the head's loss weight: the total stays on
    # the scale of a single network's, whatever the number of members.
    losses: dict[str, keras.losses.Loss] = {}
    weights: dict[str, float] = {}
    for head, loss, weight in (
        (CONVERSION, ReceivedArmBinaryCrossentropy, 1.0),
        (ORDER_VALUE, ReceivedArmLogValueError, revenue_loss_weight),
    ):
        names = member_outputs(model, head)
        for name in names:
            losses[name] = loss(n_arms)
            weights[name] = weight / len(names)
    metrics: dict[str, list] = {CONVERSION: [ReceivedArmAUC(n_arms)]}
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
        loss=losses,
        loss_weights=weights,
        metrics=metrics,
        jit_compile=jit_compile,
    )
    return model
