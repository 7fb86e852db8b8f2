"""A merchant's data read back as arrays matches what the simulator generated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from campaigns.models import Customer, Merchant
from campaigns.simulated import merchant_load_simulation
from modeling.dataset import merchant_data_load

pytestmark = pytest.mark.django_db


def test_the_arrays_are_the_simulated_merchants_data(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    merchant = Merchant.objects.create(name="Sim", slug="sim")
    simulation = merchant_load_simulation(
        merchant=merchant, customers=200, seed=11, report=lambda _: None
    )
    data = merchant_data_load(merchant=merchant)
    assert data.n_customers == 200
    assert data.arms == ["control", "AMT20", "FREESHIP", "MEMBER", "PCT10", "SPEND199_30"]
    # the simulator's customer order (C0000001 ...) is the import order, so positions agree
    assert list(data.external_ids[:3]) == list(simulation.customers["customer_id"][:3])
    events = simulation.events
    assert data.events["timestamp"].size == events["timestamp"].size
    np.testing.assert_array_equal(data.events["customer_index"], events["customer_index"])
    np.testing.assert_array_equal(
        data.events["timestamp"], events["timestamp"].astype("datetime64[s]").astype(np.int64)
    )
    # event types and categories come as codes into the names the database held
    for name in ("event_type", "category"):
        names = np.array(getattr(data, f"{name}_names"), dtype=object)
        np.testing.assert_array_equal(
            names[data.events[name]].astype(str), pd.Series(events[name]).fillna("").astype(str)
        )
        assert data.events[name].dtype == np.int32
    # quantities as stored (NaN where the shop gave none): order values are price x quantity
    np.testing.assert_array_equal(data.events["quantity"], np.asarray(events["quantity"], float))
    assert data.event_arrays(as_of=0).quantity is data.events["quantity"]
    assert np.all(np.diff(data.events["customer_index"]) >= 0)
    treated = simulation.treatments
    np.testing.assert_array_equal(data.treatments["arm"].astype(str), treated["arm"].astype(str))
    np.testing.assert_array_equal(data.treatments["converted"].astype(bool), treated["converted"])
    np.testing.assert_allclose(data.treatments["propensity"], treated["propensity"])
    assert set(data.attributes.columns) >= {"city_tier", "member_level"}


def test_customers_keep_their_ids_and_attributes_whatever_the_json_holds():
    merchant = Merchant.objects.create(name="Attrs", slug="attrs")
    other = Merchant.objects.create(name="Other", slug="other")
    stored = [
        ("C1", {"tier": "gold", "note": 'says "hi", then\nleaves', "age": 41}),
        ("C,2", {}),  # no attributes at all
        ("C3", {"tier": "Ünïcødé ✓", "vip": True}),
        ("C4", {"age": None, "tags": ["a", "b"]}),
    ]
    customers = [
        Customer.objects.create(merchant=merchant, external_id=external_id, attributes=attrs)
        for external_id, attrs in stored
    ]
    Customer.objects.create(merchant=other, external_id="C1", attributes={"tier": "other"})

    data = merchant_data_load(merchant=merchant)
    assert list(data.customer_ids) == [c.pk for c in customers]
    assert list(data.external_ids) == [external_id for external_id, _ in stored]
    assert list(data.attributes.index) == [c.pk for c in customers]
    rows = data.attributes.to_dict(orient="records")
    assert rows[0]["note"] == 'says "hi", then\nleaves' and rows[0]["age"] == 41
    assert all(pd.isna(value) for value in rows[1].values())
    assert rows[2]["tier"] == "Ünïcødé ✓" and rows[2]["vip"] is True
    assert rows[3]["tags"] == ["a", "b"]

    part = merchant_data_load(merchant=merchant, customer_range=(customers[1].pk, customers[2].pk))
    assert list(part.external_ids) == ["C,2", "C3"]
    assert list(part.attributes["tier"].fillna("")) == ["", "Ünïcødé ✓"]
