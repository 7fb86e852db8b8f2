"""Training and scoring throughput: the product's pipeline beside raw Keras on the same network.

- product training: what the training job does — ``prepare_training_data`` (split, vocabulary
  and normalizer on the training customers, ``build_sequences``, static features, targets) then
  ``train_uplift_model``'s ``model.fit`` with validation, early-stopping and timing callbacks;
  sequences/s = training rows / (median epoch training time + preparation time / epochs);
- raw training: ``model.fit`` of the same compiled network on the same in-memory arrays, no
  callbacks, no validation; sequences/s = training rows / median epoch time;
- scoring: ``scoring.predict`` from events (sequences + static features + network) beside raw
  ``model.predict`` on prepared arrays, customers/s (median of repeats). Loading customers and
  events from the database is not part of it yet (the Django side comes later).

Machines are noisy and some epochs stall on small ones: every figure is a median of several
epochs or repeats, and the product/raw ratio is measured in the same run.

    .venv/bin/python bench/train_score.py [--quick] [--customers N] [--epochs E] [--jit]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np

from bench._harness import median_of, target
from bench.quality import merchant_arrays
from modeling import simulation
from modeling.network import model_input_names
from modeling.scoring import predict
from modeling.training import (
    TrainingConfig,
    build_model_for,
    prepare_training_data,
    train_uplift_model,
)


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--jit", action="store_true", help="jit_compile=True (XLA)")
    args = parser.parse_args()
    n_customers = args.customers or (6_000 if args.quick else 40_000)
    epochs = args.epochs or (3 if args.quick else 8)
    config = TrainingConfig(
        epochs=epochs, patience=epochs + 1, jit_compile=True if args.jit else "auto", seed=1
    )
    merchant = simulation.simulate_merchant(n_customers, seed=1)
    events, treatments = merchant_arrays(merchant)
    arms = merchant.truth.arms
    print(
        f"train_score: {n_customers} customers, {merchant.n_events} events, "
        f"{len(treatments)} treatment rows; preset {config.preset}, batch {config.batch_size}, "
        f"max_len {config.max_len}, {epochs} epochs, jit_compile={config.jit_compile}; "
        f"backend {keras.backend.backend()}"
    )

    # Product: the training job's data step and fit.
    prep_seconds, prep_runs = median_of(
        3, lambda: _timed(lambda: prepare_training_data(events, treatments, config, arms=arms))
    )
    data = prepare_training_data(events, treatments, config, arms=arms)
    n_train = int(data["train"].sum())
    started = time.perf_counter()
    bundle = train_uplift_model(events, treatments, config, arms=arms)
    product_total = time.perf_counter() - started
    product_epoch = statistics.median(h["train_seconds"] for h in bundle.history)
    product_rate = n_train / (product_epoch + prep_seconds / epochs)
    print(
        f"product: data step {prep_seconds:.2f} s (runs {_fmt(prep_runs)}; "
        f"{merchant.n_events / prep_seconds:,.0f} events/s), epochs (training part) "
        f"{_fmt(h['train_seconds'] for h in bundle.history)} s, whole call {product_total:.1f} s "
        f"-> {product_rate:,.0f} sequences/s"
    )

    # Raw: the same network on the same arrays.
    keras.utils.set_random_seed(1)
    model = build_model_for(data["preprocessing"], len(arms), config, data["revenue_head"])
    rows = np.flatnonzero(data["train"])
    x_all = data["inputs"].take(rows).as_keras()
    x = {k: x_all[k] for k in model_input_names(model)}
    y = {k: v[rows] for k, v in data["y"].items()}
    clock = EpochTimes()
    model.fit(x, y, epochs=epochs, batch_size=config.batch_size, callbacks=[clock], verbose=0)
    raw_epoch = statistics.median(clock.seconds)
    raw_rate = n_train / raw_epoch
    print(f"raw model.fit: epochs {_fmt(clock.seconds)} s -> {raw_rate:,.0f} sequences/s")

    # Scoring.
    predict(bundle, events.subset(np.arange(min(2000, n_customers))))  # warm up
    score_seconds, score_runs = median_of(3, lambda: _timed(lambda: predict(bundle, events)))
    inputs = data["inputs"]
    xs = {k: v for k, v in inputs.as_keras().items() if k in model_input_names(bundle.model)}
    raw_predict, raw_runs = median_of(
        3, lambda: _timed(lambda: bundle.model.predict(xs, batch_size=4096, verbose=0))
    )
    score_rate = n_customers / score_seconds
    raw_predict_rate = len(inputs) / raw_predict
    print(
        f"scoring: predict() from events {_fmt(score_runs)} s -> {score_rate:,.0f} customers/s; "
        f"raw model.predict {_fmt(raw_runs)} s -> {raw_predict_rate:,.0f} customers/s "
        "(loading from the database not included)"
    )
    print(f"peak memory (max RSS): {peak_rss_mib():,.0f} MiB")

    target("train_product_vs_raw", product_rate / raw_rate, "x", ">=", 0.75)
    target("train_sequences_per_s", product_rate, "sequences/s", ">=", 5000)
    target("predict_customers_per_s", score_rate, "customers/s", ">=", 20000)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _fmt(values) -> str:
    return "/".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
