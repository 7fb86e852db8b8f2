"""What a training run is given, without the network: its settings (``TrainingConfig``) and
the treatment log as arrays (``TreatmentArrays``).

Kept apart from modeling/training.py, which imports Keras, so that the web processes that queue
a training (and store its settings) never load TensorFlow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = ["CONTROL", "TrainingConfig", "TreatmentArrays"]

CONTROL = "control"


@dataclass
class TrainingConfig:
    preset: str = "small"  # "small": one LSTM(64) (CPU demo); "large": 2 x LSTM(128) (GPU)
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: int = 3
    validation_share: float = 0.2
    seed: int = 0
    max_len: int = 50
    jit_compile: bool | str = "auto"
    use_sequence: bool = True
    revenue_head: bool = True
    embedding_dim: int = 16
    dense_units: int = 64
    head_units: int = 16
    # Regularization measured on 50k-customer simulated merchants (bench/quality.py): the LSTM
    # overfits the conversion base within a few epochs without it.
    dropout: float = 0.3
    delta_l2: float = 1e-4
    # Control's own delta from the shared conversion base, beside every coupon's (network.py):
    # the uplift is delta_a - delta_0. Without it control's head is the base, which the coupon
    # arms' rows (five in six) pull towards their average, so what every coupon's effect shares
    # (who reacts to coupons at all) cancels out of the uplift. Measured on bench/quality.py
    # (50k customers, seeds 1-3, paired, 1 member): Qini coefficient against the true uplift
    # 0.290 -> 0.429 and 0.425 in two runs (better on every seed; the T-learner's 0.347 beat the
    # network without it), incremental profit per seed 638 -> 686 and 570; the oracle profit
    # share at equal spend 24.0 -> 19.1 and 15.9 %, as it spends more (treats 42-44 % of
    # customers on average, not 26 %).
    control_delta: bool = True
    sequence_dropout: float = 0.3
    revenue_loss_weight: float = 0.2
    # Members: independent trunk-and-heads networks over the one encoder, served as their
    # average. An uplift is a small difference of two noisy heads, and the best-arm policy takes
    # the largest of five of them, so a customer's noisiest coupon wins; averaging members cuts
    # that noise. Measured on bench/quality.py (50k customers, seeds 1-3) with control's own
    # delta, 5 members against 1: the LSTM's oracle profit share at equal spend 15.9 %
    # (13.3/26.2/8.4) -> 25.9 % (29.7/26.2/21.8), its incremental profit per seed 570 -> 740, its
    # Qini coefficient against the true uplift 0.425 -> 0.434; the static-only network's Qini
    # 0.418 -> 0.452 (above the LSTM's), its profit share 0.9 -> 9.8 %. (Before control's delta,
    # 5 members had cut the LSTM's profit: 626 -> 515 per seed.) The members share the sequence
    # encoder, which dominates the work: bench/train_score.py's speed targets stayed met (training
    # 11,682 sequences/s, 1.08 x raw Keras; scoring 22,464 customers/s end to end), peak memory of
    # training and scoring 1,417 -> 1,657 MiB.
    members: int = 5
    # Fine-tuning the coupon effects: after the main fit (whose early stopping the conversion
    # base drives: it overfits within a few epochs, while the per-arm deltas still learn), a
    # second fit moves only the per-arm deltas, with a fresh optimizer and its own early
    # stopping, so that the validation loss it watches measures the uplift alone. Measured on
    # bench/quality.py (50k customers, seeds 1-3, paired with 0 epochs): Qini coefficient
    # against the true uplift 0.273 -> 0.315, oracle profit share at equal spend 21.0 -> 27.8 %,
    # incremental profit 626 -> 886 per seed. 0 turns it off.
    uplift_epochs: int = 20
    uplift_patience: int = 4
    n_price_buckets: int = 8
    min_count: int = 5
    # Self-supervised pretraining of the sequence encoder before the uplift fit: every
    # customer's history up to ``pretrain_horizon_days`` before the assignment predicts what
    # they did in those last days (purchase, cart, view). Behaviour is plentiful where treatment
    # outcomes are scarce; the encoder then starts from what order and timing mean.
    # Measured on bench/quality.py's 50k-customer merchants: a frozen pretrained encoder lifted
    # the Qini coefficient against the true uplift from 0.29 to 0.32-0.35 (seed 1) and 0.19 to
    # 0.29 (seed 2) over training the encoder on the treatment outcomes alone.
    pretrain_epochs: int = 8
    pretrain_horizon_days: int = 7
    pretrain_max_customers: int = 200_000
    freeze_encoder: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TreatmentArrays:
    """The treatment log: which customer got which arm, with what probability, and what happened.

    ``arm`` holds arm names (``"control"`` = no coupon) or integer indices into the arms;
    ``propensity`` is P(this arm | customer) at assignment (None: uniform); ``revenue`` is the
    order value of converted rows (ignored elsewhere; None: no revenue head can be trained)."""

    customer_index: np.ndarray
    arm: np.ndarray
    converted: np.ndarray
    propensity: np.ndarray | None = None
    revenue: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.customer_index = np.asarray(self.customer_index, dtype=np.int64)
        self.arm = np.asarray(self.arm)
        self.converted = np.asarray(self.converted).astype(bool)
        n = len(self.customer_index)
        for name in ("arm", "converted", "propensity", "revenue"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries for {n} treatment rows")
        if self.propensity is not None:
            self.propensity = np.asarray(self.propensity, dtype=np.float64)
            if np.any(~(self.propensity > 0) | (self.propensity > 1)):
                raise ValueError("propensity must be within (0, 1]")
        if self.revenue is not None:
            self.revenue = np.asarray(self.revenue, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.customer_index)

    def arm_codes(self, arms: Sequence[str]) -> np.ndarray:
        if self.arm.dtype.kind in "iu":
            codes = self.arm.astype(np.int64)
            if np.any((codes < 0) | (codes >= len(arms))):
                raise ValueError(f"arm index outside 0..{len(arms) - 1}")
            return codes
        table = {a: i for i, a in enumerate(arms)}
        uniques, inverse = np.unique(self.arm.astype(str), return_inverse=True)
        unknown = [u for u in uniques if u not in table]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; expected one of {list(arms)}")
        return np.array([table[u] for u in uniques], dtype=np.int64)[inverse]

    def take(self, rows: np.ndarray) -> TreatmentArrays:
        return TreatmentArrays(
            customer_index=self.customer_index[rows],
            arm=self.arm[rows],
            converted=self.converted[rows],
            propensity=None if self.propensity is None else self.propensity[rows],
            revenue=None if self.revenue is None else self.revenue[rows],
        )

    def resolved_arms(self) -> tuple[str, ...]:
        """Control first, then the other arm names sorted (for string arms)."""
        names = sorted(set(np.unique(self.arm.astype(str)).tolist()) - {CONTROL})
        return (CONTROL, *names)
