"""Scoring: per customer and arm, P(convert) and expected order value given conversion.

``predict`` takes the events of a chunk of customers (or inputs already built) and a
``TrainedModel`` (fresh from training or from ``artifacts.load_trained_model``), and applies the
preprocessing fitted at training time. The Django side calls it once per chunk of customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from modeling.network import CONVERSION, ORDER_VALUE, model_input_names
from modeling.sequences import EventArrays, ModelInputs, transform
from modeling.training import TrainedModel

__all__ = ["BATCH_ROWS", "WIDTH_STEP", "Predictions", "length_batches", "predict"]

# The network sees customers sorted by sequence length, BATCH_ROWS at a time, each batch cut to
# its longest customer rounded up to WIDTH_STEP steps (the LSTM's padded steps past it change
# nothing under the mask). Every batch then has one of a few fixed shapes, so the XLA-compiled
# predict step (on the CPU) is compiled a handful of times per process, not once per chunk.
BATCH_ROWS = 2048
WIDTH_STEP = 16


@dataclass
class Predictions:
    arms: tuple[str, ...]
    p_convert: np.ndarray  # float32 [n, A], column 0 = control
    order_value: np.ndarray | None  # float32 [n, A]: E[order value | conversion, arm]

    def __len__(self) -> int:
        return len(self.p_convert)

    def conversion_uplift(self) -> np.ndarray:
        """P(convert | arm) - P(convert | control), [n, A]; column 0 is 0."""
        return self.p_convert - self.p_convert[:, :1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x.astype(np.float64)))).astype(np.float32)


def length_batches(
    tokens: np.ndarray, batch_rows: int = BATCH_ROWS, width_step: int = WIDTH_STEP
) -> tuple[int, list[tuple[np.ndarray, int]]]:
    """Rows grouped for the network: ``(rows per batch, [(rows, width), ...])``.

    Customers are sorted by sequence length and cut into batches of ``rows per batch`` (the
    smallest power of two >= 64 that holds them all when they are fewer than ``batch_rows``);
    consecutive batches of the same width (the longest length in the batch rounded up to
    ``width_step``, at most the padded length) form one group. A group's ``rows`` index
    ``tokens``; only the last group may hold fewer rows than a whole number of batches."""
    n, max_len = tokens.shape
    if n == 0:
        return batch_rows, []
    rows_per_batch = _rows_per_batch(n, batch_rows)
    lengths = np.maximum(np.count_nonzero(tokens, axis=1), 1)
    order = np.argsort(lengths, kind="stable")
    ends = np.minimum(np.arange(rows_per_batch, n + rows_per_batch, rows_per_batch), n)
    longest = lengths[order[ends - 1]]
    widths = -(-longest // width_step) * width_step
    # a width within one step of the padded length is the padded length: one shape fewer
    widths = np.where(widths > max_len - width_step, max_len, widths)
    groups, start = [], 0
    for width, end in zip(widths, ends, strict=True):
        if groups and groups[-1][1] == width:
            groups[-1][2] = end
        else:
            groups.append([start, int(width), end])
        start = end
    return rows_per_batch, [(order[a:b], width) for a, width, b in groups]


def _rows_per_batch(n: int, batch_rows: int) -> int:
    return min(batch_rows, max(64, 1 << (n - 1).bit_length()))


def _serving(model: keras.Model) -> keras.Model:
    """The model with its predict step XLA-compiled where that is faster: on the TensorFlow
    backend without a GPU (measured on 2 CPU cores: 1.5-2x), as it is on JAX by default. A GPU
    keeps TensorFlow's own step, which runs the fused cuDNN LSTM (not XLA-compatible)."""
    if (
        keras.backend.backend() == "tensorflow"
        and not model.jit_compile
        and not getattr(model, "_serving_checked", False)
    ):
        model._serving_checked = True
        if not keras.distribution.list_devices("gpu"):
            model.jit_compile = True  # falls back to False (with a warning) where unsupported
            model.predict_function = None
    return model


def _network(model: keras.Model, x: dict[str, np.ndarray], batch_rows: int) -> dict:
    """The network's outputs over batches of customers of similar sequence length (see
    ``length_batches``); the result's rows are in the input's order.

    Each batch goes through ``predict_on_batch``: the model's compiled predict step on arrays
    already in memory. ``model.predict`` would wrap every group in a dataset and an epoch
    iterator first, which costs more than the step itself on a CPU (measured: 0.11 s against
    0.035 s for 2048 customers of 16 steps)."""
    names = model_input_names(model)
    n = len(x["static"])
    if "tokens" in names:
        rows_per_batch, groups = length_batches(x["tokens"], batch_rows, WIDTH_STEP)
    else:  # the static-features network: one group, whole batches all the same
        rows_per_batch, groups = _rows_per_batch(n, batch_rows), [(np.arange(n), None)]
    out: dict[str, np.ndarray] = {}
    for rows, width in groups:
        for start in range(0, len(rows), rows_per_batch):
            batch = rows[start : start + rows_per_batch]
            # the last batch is filled up with its first row: every batch has the same shape
            taken = np.concatenate([batch, np.full(rows_per_batch - len(batch), batch[0])])
            part = {k: x[k][taken, :width] if k != "static" else x[k][taken] for k in names}
            for name, values in model.predict_on_batch(part).items():
                if name not in out:
                    out[name] = np.empty((n, *values.shape[1:]), values.dtype)
                out[name][batch] = values[: len(batch)]
    return out


def predict(
    bundle: TrainedModel, inputs: EventArrays | ModelInputs, *, batch_size: int = BATCH_ROWS
) -> Predictions:
    """Predictions for every customer of ``inputs`` (row i = customer i of the chunk)."""
    if isinstance(inputs, EventArrays):
        inputs = transform(inputs, bundle.preprocessing)
    n_arms = len(bundle.arms)
    if len(inputs) == 0:
        empty = np.zeros((0, n_arms), dtype=np.float32)
        return Predictions(bundle.arms, empty, empty.copy() if bundle.has_revenue_head else None)
    out = _network(_serving(bundle.model), inputs.as_keras(), batch_size)
    order_value = None
    if ORDER_VALUE in out:
        log_value = np.clip(np.asarray(out[ORDER_VALUE], dtype=np.float64), -20.0, 20.0)
        order_value = (np.exp(log_value) * bundle.order_value_smearing).astype(np.float32)
    return Predictions(
        arms=bundle.arms, p_convert=_sigmoid(np.asarray(out[CONVERSION])), order_value=order_value
    )
