"""Training a merchant's uplift model: the Django side around the ML core.

``model_version_train`` queues a version and its job on the `training` queue; ``train_version``
(run by the task) loads the merchant's data, splits the randomized experiment by customer into
training and held-out rows, trains, evaluates on the held-out rows, saves the artifact
atomically and marks the version ready (the merchant's first ready model becomes champion).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from campaigns.models import Merchant
from modeling.artifacts import save_trained_model
from modeling.baselines import (
    ArmMeans,
    ResponseModel,
    TLearner,
    random_policy,
    response_targeting_policy,
)
from modeling.choices import JobKind, ModelPreset, ModelStatus
from modeling.dataset import MerchantData, merchant_data_load
from modeling.metrics import evaluate_uplift
from modeling.models import ModelVersion
from modeling.scoring import predict
from modeling.sequences import EventArrays, static_features
from modeling.services import job_enqueue, model_version_finish, model_version_next_number
from modeling.training import TrainingConfig, TreatmentArrays, customer_split, train_uplift_model

HELD_OUT_SHARE = 0.2  # customers kept out of training, for the offline evaluation
Report = Callable[[int, str], None]


class TrainingDataError(Exception):
    """The merchant's data cannot train a model (no treatments, one arm only ...)."""


@transaction.atomic
def model_version_train(
    *, merchant: Merchant, actor, preset: str = ModelPreset.SMALL, epochs: int = 20
) -> ModelVersion:
    from modeling.tasks import train_model

    config = TrainingConfig(preset=preset, epochs=epochs)
    version = ModelVersion.objects.create(
        merchant=merchant,
        number=model_version_next_number(merchant=merchant),
        preset=preset,
        hyperparameters=config.to_dict(),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    job = job_enqueue(
        merchant=merchant,
        kind=JobKind.TRAIN,
        task=train_model,
        created_by=actor,
        params={"version_id": version.pk},
    )
    ModelVersion.objects.filter(pk=version.pk).update(job=job)
    version.job = job
    return version


def train_version(*, version: ModelVersion, report: Report) -> ModelVersion:
    """Train, evaluate and save one queued version (called by the training task)."""
    updated = ModelVersion.objects.filter(pk=version.pk, status=ModelStatus.QUEUED).update(
        status=ModelStatus.TRAINING
    )
    if not updated:
        version.refresh_from_db()
        if version.status != ModelStatus.TRAINING:  # finished, failed or cancelled meanwhile
            return version
    report(2, "Loading the merchant's data")
    data = merchant_data_load(merchant=version.merchant)
    events, treatments = experiment_arrays(data)
    config = TrainingConfig.from_dict(version.hyperparameters)
    held_out = customer_split(treatments.customer_index, HELD_OUT_SHARE, config.seed + 1)
    training_rows = np.flatnonzero(~held_out)
    curves: list[dict[str, float]] = []
    pretraining: list[dict[str, float]] = []

    def save_curves() -> None:  # live, for the model page's training chart
        ModelVersion.objects.filter(pk=version.pk).update(
            training_curves={"pretraining": pretraining, "epochs": curves}
        )

    def on_pretrain_epoch(epoch: int, logs: dict[str, float]) -> None:
        pretraining.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        save_curves()
        report(
            8,
            f"Pretraining the sequence encoder on recent behaviour: epoch {epoch + 1}/"
            f"{config.pretrain_epochs}, loss {logs.get('loss', 0):.4f}",
        )

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        curves.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        save_curves()
        share = 10 + int(75 * (epoch + 1) / max(config.epochs, 1))
        report(share, f"Epoch {epoch + 1}/{config.epochs}, loss {logs.get('loss', 0):.4f}")

    report(8, f"Training on {training_rows.size:,} of {len(treatments):,} treated customers")
    bundle = train_uplift_model(
        events,
        treatments.take(training_rows),
        config,
        arms=data.arms,
        progress=on_epoch,
        pretrain_progress=on_pretrain_epoch,
    )
    report(88, "Evaluating on held-out customers")
    evaluation = _evaluate(bundle, events, treatments, held_out, data.arms, config, report)
    path = Path(settings.MODEL_ARTIFACT_ROOT) / version.merchant.slug / f"v{version.number}"
    save_trained_model(bundle, path)
    report(97, "Saved")
    return model_version_finish(
        version=version,
        arms=list(bundle.arms),
        artifact_path=str(path),
        evaluation=evaluation,
        training_curves={
            "pretraining": pretraining,
            "pretraining_gain": bundle.pretraining.get("gain"),
            "encoder_frozen": bundle.pretraining.get("frozen", False),
            "epochs": curves,
            "best_epoch": bundle.best_epoch + 1,
        },
        data_counts={
            "customers": data.n_customers,
            "events": int(events.customer_index.size),
            "treatments": len(treatments),
            "training_rows": int(training_rows.size),
            "held_out_rows": int(held_out.sum()),
        },
    )


def experiment_arrays(data: MerchantData) -> tuple[EventArrays, TreatmentArrays]:
    """The events before the experiment's assignment, and its treatment rows, as core arrays."""
    t = data.treatments
    if t["customer_index"].size == 0:
        raise TrainingDataError("There are no treatment logs to learn from; import past results.")
    if len(set(t["arm"].tolist())) < 2:
        raise TrainingDataError("The treatment logs hold a single arm; uplift needs a comparison.")
    as_of = int(np.min(t["assigned_at"]))  # sequences end where the first assignment was made
    events = data.event_arrays(as_of=as_of)
    treatments = TreatmentArrays(
        customer_index=t["customer_index"],
        arm=t["arm"],
        converted=t["converted"].astype(bool),
        propensity=t["propensity"],
        revenue=np.where(t["converted"].astype(bool), t["revenue"], np.nan),
    )
    return events, treatments


RESPONSE_TARGET_SHARE = 0.3  # response-model targeting: the coupon goes to the likeliest 30 %


def _evaluate(bundle, events, treatments, held_out, arms, config: TrainingConfig, report: Report):
    """The model and every baseline, trained on the same rows, measured on the same held-out
    randomized rows (conversion: Qini, AUUC, uplift@k, calibration, policy value)."""
    arms = list(arms)
    rows = np.flatnonzero(held_out)
    fit_rows = np.flatnonzero(~held_out)
    held = treatments.take(rows)
    customers = held.customer_index
    arm = held.arm_codes(arms)
    fit_arm = treatments.take(fit_rows).arm_codes(arms)
    converted = held.converted
    propensity = held.propensity
    n_arms = len(arms)

    def measure(p: np.ndarray, policy: np.ndarray) -> dict[str, Any]:
        return evaluate_uplift(
            p, arm, converted, arms=arms, propensity=propensity, policy=policy,
            policy_outcome_model=p, seed=config.seed,
        )  # fmt: skip

    def best_uplift(p: np.ndarray) -> np.ndarray:
        return np.argmax(p - p[:, :1], axis=1)

    results: dict[str, Any] = {}
    p_model = predict(bundle, events).p_convert[customers]
    results["lstm"] = measure(p_model, best_uplift(p_model))

    report(90, "Training the baselines on the same rows")
    static_config = TrainingConfig.from_dict({**config.to_dict(), "use_sequence": False})
    static_bundle = train_uplift_model(events, treatments.take(fit_rows), static_config, arms=arms)
    p_static = predict(static_bundle, events).p_convert[customers]
    results["static_network"] = measure(p_static, best_uplift(p_static))

    x = static_features(events, bundle.preprocessing.static_spec)
    fit_x, held_x = x[treatments.customer_index[fit_rows]], x[customers]
    fit_converted = treatments.converted[fit_rows]
    t_learner = TLearner(n_arms, seed=config.seed).fit(fit_x, fit_arm, fit_converted)
    p_t, _ = t_learner.predict(held_x)
    results["t_learner"] = measure(p_t, best_uplift(p_t))

    means = ArmMeans(n_arms).fit(fit_arm, fit_converted)
    p_means, _ = means.predict(len(rows))
    best = int(np.argmax(p_means[0, 1:]) + 1)  # the coupon that converts best on average
    results["best_single_coupon"] = measure(p_means, np.full(len(rows), best))

    p_buy = ResponseModel(seed=config.seed).fit(fit_x, fit_converted).predict(held_x)
    p_response = np.zeros((len(rows), n_arms), dtype=np.float32)
    p_response[:, 1:] = p_buy[:, None]  # its "uplift" score is simply P(buy)
    policy = response_targeting_policy(p_buy, best, RESPONSE_TARGET_SHARE)
    results["response_model"] = measure(p_response, policy)

    rng = np.random.default_rng(config.seed)
    p_random = rng.random((len(rows), n_arms)).astype(np.float32)
    results["random"] = measure(p_random, random_policy(len(rows), n_arms, config.seed))

    evaluation = results.pop("lstm")
    evaluation["baselines"] = results
    evaluation["summary"] = {
        name: _summary(entry) for name, entry in {"lstm": evaluation, **results}.items()
    }
    return _plain(evaluation)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one method, for the side-by-side table."""
    policy = report.get("policy") or {}
    return {
        "mean_qini_coefficient": report.get("mean_qini_coefficient"),
        "policy_value_ipw": policy.get("ipw"),
        "policy_value_dr": policy.get("dr"),
    }


def _plain(value):
    """JSON-ready: numpy numbers and arrays become Python ones, NaN becomes None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if hasattr(value, "__dataclass_fields__"):
        return _plain(vars(value))
    return value
