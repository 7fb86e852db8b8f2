"""Scoring: per customer and arm, P(convert) and expected order value given conversion.

``predict`` takes the events of a chunk of customers (or inputs already built) and a
``TrainedModel`` (fresh from training or from ``artifacts.load_trained_model``), and applies the
preprocessing fitted at training time. The Django side calls it once per chunk of customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeling.network import CONVERSION, ORDER_VALUE, model_input_names
from modeling.sequences import EventArrays, ModelInputs, transform
from modeling.training import TrainedModel

__all__ = ["Predictions", "predict"]


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


def predict(
    bundle: TrainedModel, inputs: EventArrays | ModelInputs, *, batch_size: int = 4096
) -> Predictions:
    """Predictions for every customer of ``inputs`` (row i = customer i of the chunk)."""
    if isinstance(inputs, EventArrays):
        inputs = transform(inputs, bundle.preprocessing)
    n_arms = len(bundle.arms)
    if len(inputs) == 0:
        empty = np.zeros((0, n_arms), dtype=np.float32)
        return Predictions(bundle.arms, empty, empty.copy() if bundle.has_revenue_head else None)
    x = inputs.as_keras()
    out = bundle.model.predict(
        {k: x[k] for k in model_input_names(bundle.model)}, batch_size=batch_size, verbose=0
    )
    order_value = None
    if ORDER_VALUE in out:
        log_value = np.clip(np.asarray(out[ORDER_VALUE], dtype=np.float64), -20.0, 20.0)
        order_value = (np.exp(log_value) * bundle.order_value_smearing).astype(np.float32)
    return Predictions(
        arms=bundle.arms, p_convert=_sigmoid(np.asarray(out[CONVERSION])), order_value=order_value
    )
