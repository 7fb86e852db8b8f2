"""Training a merchant's uplift model: the Django side around the ML core.

``model_version_train`` queues a version and its job on the `training` queue; ``train_version``
(run by the task) loads the merchant's data: every randomized row so far (the treatment log and
the holdout and exploration rows of applied strategies with outcomes, each with its logged
propensity: ``modeling.dataset.merchant_treatment_rows``); splits it by customer into training
and held-out rows with a keyed hash per merchant (``evaluation_split``: every version holds out
the same customers); trains, evaluates on the held-out rows, saves the artifact atomically and
marks the version ready. The merchant's first ready model becomes champion; a later one only when
it beats the champion on the same held-out rows (``modeling.promotion``: the champion is
re-scored there and the rule's comparison is kept in ``evaluation["champion_comparison"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from campaigns.models import Merchant
from campaigns.randomization import hash_uniform
from modeling.choices import JobKind, ModelPreset, ModelStatus
from modeling.dataset import MerchantData, merchant_data_load
from modeling.metrics import evaluate_uplift
from modeling.models import ModelVersion
from modeling.promotion import (
    align_predictions,
    compare_with_champion,
    evaluation_split,
)
from modeling.sequences import EventArrays, static_features
from modeling.services import (
    job_enqueue,
    model_version_finish,
    model_version_next_number,
    model_version_promote,
)
from modeling.training_config import TrainingConfig, TreatmentArrays

HELD_OUT_SHARE = 0.2  # customers kept out of training, for the offline evaluation
# Salt of the held-out split's keyed hash, with the merchant's id: fixed for the merchant, so
# every version of it holds out the same customers and champion and challenger compare there.
SPLIT_SALT = "promo-portal-evaluation-split"
Report = Callable[[int, str], None]


class TrainingDataError(Exception):
    """The merchant's data cannot train a model (no treatments, one arm only ...)."""


@transaction.atomic
def model_version_train(
    *, merchant: Merchant, actor, preset: str = ModelPreset.SMALL, epochs: int = 20
) -> ModelVersion:
    from modeling.tasks import train_model

    config = TrainingConfig(preset=preset, epochs=epochs)
    if settings.MODEL_MEMBERS:
        config.members = settings.MODEL_MEMBERS
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
    from modeling.artifacts import save_trained_model  # Keras: on the worker only
    from modeling.training import train_uplift_model

    updated = ModelVersion.objects.filter(pk=version.pk, status=ModelStatus.QUEUED).update(
        status=ModelStatus.TRAINING
    )
    if not updated:
        version.refresh_from_db()
        if version.status != ModelStatus.TRAINING:  # finished, failed or cancelled meanwhile
            return version
    report(2, _("Loading the merchant's data"))
    data = merchant_data_load(merchant=version.merchant)
    events, treatments = experiment_arrays(data)
    config = TrainingConfig.from_dict(version.hyperparameters)
    held_out = held_out_rows(merchant=version.merchant, data=data, treatments=treatments)
    training_rows = np.flatnonzero(~held_out)
    curves: list[dict[str, float]] = []
    pretraining: list[dict[str, float]] = []
    fine_tuning: list[dict[str, float]] = []

    def save_curves() -> None:  # live, for the model page's training chart
        ModelVersion.objects.filter(pk=version.pk).update(
            training_curves={
                "pretraining": pretraining,
                "epochs": curves,
                "fine_tuning": fine_tuning,
            }
        )

    def on_pretrain_epoch(epoch: int, logs: dict[str, float]) -> None:
        pretraining.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        save_curves()
        report(
            8,
            _(
                "Pretraining the sequence encoder on recent behaviour: epoch %(epoch)s/"
                "%(epochs)s, loss %(loss).4f"
            )
            % {"epoch": epoch + 1, "epochs": config.pretrain_epochs, "loss": logs.get("loss", 0)},
        )

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        curves.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        save_curves()
        share = 10 + int(75 * (epoch + 1) / max(config.epochs, 1))
        report(
            share,
            _("Epoch %(epoch)s/%(epochs)s, loss %(loss).4f")
            % {"epoch": epoch + 1, "epochs": config.epochs, "loss": logs.get("loss", 0)},
        )

    def on_fine_tune_epoch(epoch: int, logs: dict[str, float]) -> None:
        fine_tuning.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        save_curves()
        report(
            86,
            _("Fine-tuning the coupon effects: epoch %(epoch)s/%(epochs)s, loss %(loss).4f")
            % {"epoch": epoch + 1, "epochs": config.uplift_epochs, "loss": logs.get("loss", 0)},
        )

    report(
        8,
        _("Training on %(rows)s of %(total)s treated customers")
        % {"rows": f"{training_rows.size:,}", "total": f"{len(treatments):,}"},
    )
    bundle = train_uplift_model(
        events,
        treatments.take(training_rows),
        config,
        arms=data.arms,
        progress=on_epoch,
        pretrain_progress=on_pretrain_epoch,
        fine_tune_progress=on_fine_tune_epoch,
    )
    report(88, _("Evaluating on held-out customers"))
    evaluation = _evaluate(bundle, events, treatments, held_out, data.arms, config, report)
    report(94, _("Comparing with the champion on the same held-out customers"))
    comparison = _champion_comparison(version, bundle, events, treatments, held_out, data.arms)
    if comparison is not None:
        evaluation["champion_comparison"] = comparison
    evaluation["split"] = {"kind": "customer_hash", "share": HELD_OUT_SHARE}
    path = Path(settings.MODEL_ARTIFACT_ROOT) / version.merchant.slug / f"v{version.number}"
    save_trained_model(bundle, path)
    report(97, _("Saved"))
    version = model_version_finish(
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
            "fine_tuning": fine_tuning,
            "fine_tuning_best_epoch": bundle.fine_tuning.get("best_epoch", 0),
        },
        data_counts={
            "customers": data.n_customers,
            "events": int(events.customer_index.size),
            "treatments": len(treatments),
            "training_rows": int(training_rows.size),
            "held_out_rows": int(held_out.sum()),
            **_rows_by_source(data),
        },
    )
    if comparison and comparison.get("promote") and not version.is_champion:
        version = model_version_promote(
            version=version,
            actor=None,
            reason="beat the champion on the shared held-out split",
            evidence=comparison,
        )
    return version


def held_out_rows(
    *, merchant: Merchant, data: MerchantData, treatments: TreatmentArrays
) -> np.ndarray:
    """Which treatment rows are held out for evaluation: those of the customers whose keyed
    hash (merchant salt, database id) falls in the held-out share (``modeling.promotion``)."""
    return held_out_customers(
        merchant=merchant, customer_ids=data.customer_ids[treatments.customer_index]
    )


def held_out_customers(*, merchant: Merchant, customer_ids: np.ndarray) -> np.ndarray:
    """Whether each customer (database ids) is on the held-out side of the merchant's split:
    no version trained with the split (``evaluation["split"]``) learned from their rows."""
    uniform = hash_uniform(np.asarray(customer_ids), salt=f"{SPLIT_SALT}:{merchant.pk}")
    return evaluation_split(uniform, HELD_OUT_SHARE)


def trained_on_split(version: ModelVersion) -> bool:
    """Whether the version held out the merchant's split (versions trained before it did not)."""
    return (version.evaluation or {}).get("split", {}).get("kind") == "customer_hash"


def _rows_by_source(data: MerchantData) -> dict[str, int]:
    """Treatment rows per source beyond the imported history (holdout, exploration ...)."""
    sources, counts = np.unique(
        np.asarray(data.treatments["source"]).astype(str), return_counts=True
    )
    return {
        f"{source}_rows": int(count)
        for source, count in zip(sources, counts, strict=True)
        if source != "import"
    }


def _held_out_predictions(bundle, events: EventArrays, customers: np.ndarray) -> np.ndarray:
    """``bundle``'s P(convert) per held-out row (customers may repeat), predicting each
    customer once."""
    from modeling.scoring import predict  # Keras: on the worker only

    unique, inverse = np.unique(customers, return_inverse=True)
    return predict(bundle, events.subset(unique)).p_convert[inverse]


def _champion_comparison(
    version: ModelVersion,
    bundle,
    events: EventArrays,
    treatments: TreatmentArrays,
    held_out: np.ndarray,
    arms: list[str],
) -> dict[str, Any] | None:
    """The promotion rule's comparison with the merchant's champion on this version's held-out
    rows (``modeling.promotion``); None without a champion to compare with."""
    from modeling.artifacts import load_trained_model  # Keras: on the worker only

    champion = (
        ModelVersion.objects.filter(merchant=version.merchant, is_champion=True)
        .exclude(pk=version.pk)
        .first()
    )
    if champion is None:
        return None
    entry: dict[str, Any] = {"champion": champion.number, "champion_id": champion.pk}
    rows = np.flatnonzero(held_out)
    if rows.size == 0:
        return {**entry, "error": _("no held-out rows"), "promote": False}
    try:
        champion_bundle = load_trained_model(champion.artifact_path)
    except (OSError, ValueError) as error:
        message = _("the champion's model could not be loaded: %(error)s") % {"error": error}
        return {**entry, "error": message[:500]}
    held = treatments.take(rows)
    customers = held.customer_index
    p_challenger = align_predictions(
        _held_out_predictions(bundle, events, customers), bundle.arms, arms
    )
    p_champion = align_predictions(
        _held_out_predictions(champion_bundle, events, customers), champion_bundle.arms, arms
    )
    comparison = compare_with_champion(
        p_challenger, p_champion, held.arm_codes(arms), held.converted, held.propensity
    )
    # Whether the champion was trained on this split: versions trained before the hash split
    # may have seen some of these customers, which flatters the champion.
    same_split = trained_on_split(champion)
    return _plain({**entry, **comparison.to_dict(), "champion_same_split": same_split})


def experiment_arrays(data: MerchantData) -> tuple[EventArrays, TreatmentArrays]:
    """The events before the experiment's assignment, and its treatment rows, as core arrays."""
    t = data.treatments
    if t["customer_index"].size == 0:
        raise TrainingDataError(
            _("There are no treatment logs to learn from; import past results.")
        )
    if len(set(t["arm"].tolist())) < 2:
        raise TrainingDataError(
            _("The treatment logs hold a single arm; uplift needs a comparison.")
        )
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
    from modeling.baselines import (  # scikit-learn, like Keras: on the worker only
        ArmMeans,
        ResponseModel,
        TLearner,
        random_policy,
        response_targeting_policy,
    )
    from modeling.scoring import predict
    from modeling.training import train_uplift_model

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

    report(90, _("Training the baselines on the same rows"))
    static_config = TrainingConfig.from_dict({**config.to_dict(), "use_sequence": False})
    static_bundle = train_uplift_model(events, treatments.take(fit_rows), static_config, arms=arms)
    p_static = predict(static_bundle, events).p_convert[customers]
    results["static_network"] = measure(p_static, best_uplift(p_static))

    x = static_features(events, bundle.preprocessing.static_spec)
    fit_x, held_x = x[treatments.customer_index[fit_rows]], x[customers]
    fit_converted = treatments.converted[fit_rows]
    t_learner = TLearner(n_arms, seed=config.seed).fit(fit_x, fit_arm, fit_converted)
    p_t, _values = t_learner.predict(held_x)
    results["t_learner"] = measure(p_t, best_uplift(p_t))

    means = ArmMeans(n_arms).fit(fit_arm, fit_converted)
    p_means, _values = means.predict(len(rows))
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
