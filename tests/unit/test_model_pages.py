"""The model page: live training progress, Qini curves of the model and every baseline per
coupon, the metrics side by side with intervals, calibration; versions, train and promote."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from django.urls import reverse

from modeling.metrics import evaluate_uplift
from modeling.models import ModelVersion
from modeling.training_service import _plain
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

ARMS = ["control", "AMT20", "PCT10"]  # as ModelVersion.arms lists them
# session, user, membership, the version, the versions list, the navbar, the retraining schedule
QUERIES_MODEL_PAGE = 7
QUERIES_FRAGMENT = 4  # session, user, membership, the version
BASELINES = ("static_network", "t_learner", "best_single_coupon", "response_model", "random")


def _evaluation(seed: int = 0, n: int = 600) -> dict:
    """An evaluation of the layout ``training_service._evaluate`` stores, on synthetic rows."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, len(ARMS), n)
    converted = rng.random(n) < 0.2

    def report(noise: float) -> dict:
        p = np.clip(0.2 + rng.normal(0, noise, (n, len(ARMS))), 0.01, 0.99)
        policy = np.argmax(p - p[:, :1], axis=1)
        return evaluate_uplift(
            p, arm, converted, arms=ARMS, propensity=np.full(n, 1 / 3), policy=policy,
            policy_outcome_model=p,
        )  # fmt: skip

    evaluation = report(0.05)
    evaluation["baselines"] = {name: report(0.05) for name in BASELINES}
    return _plain(evaluation)


def _figure(page: str, json_id: str) -> dict:
    match = re.search(rf'<script id="{json_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, json_id
    return json.loads(match.group(1))


def _model_url(version, name: str = "modeling:model") -> str:
    return reverse(name, kwargs={"merchant": version.merchant.slug, "version_id": version.pk})


def test_the_page_shows_qini_curves_of_the_model_and_every_baseline_per_coupon(
    merchant_a, vera, client_for
):
    # given a trained version with its held-out evaluation
    version = ModelVersionFactory(merchant=merchant_a, arms=ARMS, evaluation=_evaluation())

    # when a viewer opens its page
    page = client_for(vera).get(_model_url(version)).content.decode()

    # then each coupon has one Qini chart with the model, the five baselines and the references
    for position, arm in enumerate(ARMS[1:]):
        figure = _figure(page, f"qini-{position}-data")
        names = [trace["name"] for trace in figure["data"]]
        assert names[:6] == [
            "LSTM uplift model",
            "Same network, no sequence",
            "T-learner (gradient boosting)",
            "Best single coupon for all",
            "Response model (likeliest buyers)",
            "Random targeting",
        ]
        assert "Random (no targeting)" in names and "Perfect ranking" in names
        assert arm in figure["layout"]["title"]["text"]
        assert "%" in figure["layout"]["xaxis"]["title"]["text"]  # units on the axes
        stored = version.evaluation["arms"][arm]["qini_curve"]
        assert figure["data"][0]["y"] == pytest.approx([100 * v for v in stored["qini"]])
        assert figure["layout"]["colorway"][0] == "#0072B2"  # Okabe-Ito
    assert 'data-plotly-figure="qini-0-data"' in page
    assert "vendor/plotly/plotly.min.js" in page and "js/charts.js" in page  # served locally
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", page)  # nothing off-site


def test_the_metrics_table_puts_methods_side_by_side_with_intervals(merchant_a, vera, client_for):
    evaluation = _evaluation()
    version = ModelVersionFactory(merchant=merchant_a, arms=ARMS, evaluation=evaluation)

    page = client_for(vera).get(_model_url(version)).content.decode()

    summary = page.split('data-testid="evaluation-summary"')[1].split("</table>")[0]
    for name in ("lstm", *BASELINES):
        assert f'data-method="{name}"' in summary
    dr = evaluation["policy"]["dr"]
    assert f"[{100 * dr['low']:.2f}, {100 * dr['high']:.2f}]" in summary  # the 95 % interval
    assert page.count('data-testid="arm-metrics"') == 2  # Qini, AUUC, uplift@k per coupon
    amt20 = evaluation["baselines"]["t_learner"]["arms"]["AMT20"]
    low, high = amt20["intervals"]["qini_coefficient"]
    assert f"{amt20['qini_coefficient']:.3f}" in page
    assert f"[{low:.3f}, {high:.3f}]" in page  # its bootstrap interval
    low, high = amt20["intervals"]["uplift_at_10"]
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in page


def test_the_calibration_chart_shows_predicted_against_observed_by_decile(
    merchant_a, vera, client_for
):
    evaluation = _evaluation()
    version = ModelVersionFactory(merchant=merchant_a, arms=ARMS, evaluation=evaluation)

    page = client_for(vera).get(_model_url(version)).content.decode()

    figure = _figure(page, "calibration-data")
    overall = figure["data"][0]
    assert overall["x"] == pytest.approx(
        [100 * v for v in evaluation["calibration"]["mean_predicted"]]
    )
    assert overall["y"] == pytest.approx([100 * v for v in evaluation["calibration"]["observed"]])
    assert len(overall["x"]) == 10
    assert figure["data"][-1]["name"] == "Perfect calibration"
    assert "(%)" in figure["layout"]["yaxis"]["title"]["text"]


def test_the_training_fragment_polls_and_draws_the_loss_while_training(
    merchant_a, vera, client_for
):
    # given a version in training, two pretraining epochs and one training epoch done
    version = ModelVersionFactory(
        merchant=merchant_a,
        status="training",
        hyperparameters={"epochs": 20},
        training_curves={
            "pretraining": [{"epoch": 1, "loss": 2.0, "val_loss": 2.1}, {"epoch": 2, "loss": 1.8}],
            "epochs": [{"epoch": 1, "loss": 0.5, "val_loss": 0.55}],
        },
    )
    client = client_for(vera)

    # when the page and the fragment it polls are read
    page = client.get(_model_url(version)).content.decode()
    fragment = client.get(
        _model_url(version, "modeling:model-training") + "?poll=1", HTTP_HX_REQUEST="true"
    )

    # then both show the epoch and poll the fragment; the chart holds both loss curves
    text = fragment.content.decode()
    for html in (page, text):
        assert "Epoch 1 of at most 20" in html
        assert 'hx-trigger="every 2s"' in html
        assert _model_url(version, "modeling:model-training") in html
    assert "HX-Refresh" not in fragment.headers
    pretraining = _figure(text, "training-pretraining-data")
    assert pretraining["data"][0]["y"] == [2.0, 1.8]
    training = _figure(text, "training-epochs-data")
    assert [t["name"] for t in training["data"]] == ["training", "validation"]
    assert training["layout"]["xaxis"]["title"]["text"] == "Epoch"


def test_the_fragment_stops_polling_and_reloads_the_page_once_training_ends(
    merchant_a, vera, client_for
):
    version = ModelVersionFactory(
        merchant=merchant_a,
        training_curves={
            "pretraining": [],
            "epochs": [{"epoch": 1, "loss": 0.5}],
            "best_epoch": 1,
            "fine_tuning": [{"epoch": 1, "loss": 0.4, "val_loss": 0.45}, {"epoch": 2}],
            "fine_tuning_best_epoch": 1,
        },
    )
    response = client_for(vera).get(
        _model_url(version, "modeling:model-training") + "?poll=1", HTTP_HX_REQUEST="true"
    )
    assert response.headers["HX-Refresh"] == "true"
    text = response.content.decode()
    assert "hx-trigger" not in text
    assert "best epoch 1 kept" in text
    assert "coupon effects fine-tuned, epoch 1 kept" in text
    fine_tuning = _figure(text, "training-fine_tuning-data")
    assert fine_tuning["data"][0]["y"] == [0.4, None]
    assert fine_tuning["layout"]["shapes"][0]["x0"] == 1  # the kept epoch is marked

    # when no fine-tuning epoch beat the main fit, the page says the main fit was kept
    version.training_curves["fine_tuning_best_epoch"] = 0
    version.save(update_fields=["training_curves"])
    text = client_for(vera).get(_model_url(version)).content.decode()
    assert "did not lower the validation loss: the main fit was kept" in text


def test_managers_see_train_and_promote_viewers_see_neither_and_are_refused(
    merchant_a, mona, vera, client_for
):
    champion = ModelVersionFactory(merchant=merchant_a, is_champion=True)
    challenger = ModelVersionFactory(merchant=merchant_a)

    manager_page = client_for(mona).get(_model_url(challenger)).content.decode()
    viewer_page = client_for(vera).get(_model_url(challenger)).content.decode()

    assert 'data-testid="promote-model"' in manager_page
    assert 'data-testid="train-model"' in manager_page
    assert "csrfmiddlewaretoken" in manager_page
    assert f"v{champion.number}" in viewer_page  # the versions list
    assert 'data-testid="promote-model"' not in viewer_page
    assert 'data-testid="train-model"' not in viewer_page
    promote = client_for(vera).post(_model_url(challenger, "modeling:model-promote"))
    train = client_for(vera).post(reverse("modeling:model-train", kwargs={"merchant": "shop-a"}))
    assert promote.status_code == train.status_code == 403
    assert ModelVersion.objects.get(pk=champion.pk).is_champion


@pytest.mark.parametrize("versions", [1, 12])
def test_the_model_page_reads_a_fixed_number_of_queries(
    merchant_a, vera, client_for, django_assert_num_queries, versions
):
    evaluation = _evaluation()
    made = [
        ModelVersionFactory(merchant=merchant_a, arms=ARMS, evaluation=evaluation)
        for _ in range(versions)
    ]
    client = client_for(vera)
    with django_assert_num_queries(QUERIES_MODEL_PAGE):
        assert client.get(_model_url(made[0])).status_code == 200
    with django_assert_num_queries(QUERIES_FRAGMENT):
        assert client.get(_model_url(made[0], "modeling:model-training")).status_code == 200
