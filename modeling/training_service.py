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
from modeling.choices import JobKind, ModelPreset, ModelStatus
from modeling.dataset import MerchantData, merchant_data_load
from modeling.metrics import evaluate_uplift
from modeling.models import ModelVersion
from modeling.scoring import predict
from modeling.sequences import EventArrays
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

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        curves.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        ModelVersion.objects.filter(pk=version.pk).update(training_curves={"epochs": curves})
        share = 10 + int(75 * (epoch + 1) / max(config.epochs, 1))
        report(share, f"Epoch {epoch + 1}/{config.epochs}, loss {logs.get('loss', 0):.4f}")

    report(8, f"Training on {training_rows.size:,} of {len(treatments):,} treated customers")
    bundle = train_uplift_model(
        events, treatments.take(training_rows), config, arms=data.arms, progress=on_epoch
    )
    report(88, "Evaluating on held-out customers")
    evaluation = _evaluate(bundle, events, treatments, held_out, data.arms)
    path = Path(settings.MODEL_ARTIFACT_ROOT) / version.merchant.slug / f"v{version.number}"
    save_trained_model(bundle, path)
    report(97, "Saved")
    return model_version_finish(
        version=version,
        arms=list(bundle.arms),
        artifact_path=str(path),
        evaluation=evaluation,
        training_curves={"epochs": curves, "best_epoch": bundle.best_epoch + 1},
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


def _evaluate(bundle, events, treatments, held_out, arms) -> dict[str, Any]:
    rows = np.flatnonzero(held_out)
    customers = treatments.customer_index[rows]
    predictions = predict(bundle, events)
    p = predictions.p_convert[customers]
    arm = treatments.take(rows).arm_codes(list(arms))
    policy = np.argmax(p - p[:, :1], axis=1)  # the best arm by predicted conversion uplift
    report = evaluate_uplift(
        p,
        arm,
        treatments.converted[rows],
        arms=list(arms),
        propensity=treatments.propensity[rows] if treatments.propensity is not None else None,
        policy=policy,
        policy_outcome_model=p,
    )
    return _plain(report)


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
