"""What each kind of import holds: columns, their types, and the names they go by in exports."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ID_MAX_LENGTH = 128
# A column mapped to LEAVE_OUT is skipped on purpose; one mapped to "" is unknown (an error,
# except in customer files, where unknown columns are attributes).
LEAVE_OUT = "-"
TEXT_MAX_LENGTH = 128
ATTRIBUTE_MAX_LENGTH = 1000


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # id | text | timestamp | money | int | probability | bool | event_type | arm
    required: bool = True  # the column must be present
    nullable: bool = False  # a value may be empty
    synonyms: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Schema:
    kind: str
    columns: tuple[Column, ...]
    # customers: extra columns are typed attributes; elsewhere an extra column is an error.
    extra_columns_are_attributes: bool = False
    key_columns: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


CUSTOMER_ID = Column(
    "customer_id",
    "id",
    synonyms=(
        "customer",
        "customerid",
        "user_id",
        "userid",
        "uid",
        "member_id",
        "客户id",
        "用户id",
        "会员id",
        "顾客id",
    ),
    help="The shop's own id of the customer.",
)

SCHEMAS: dict[str, Schema] = {
    "customers": Schema(
        kind="customers",
        columns=(CUSTOMER_ID,),
        extra_columns_are_attributes=True,
        key_columns=("customer_id",),
    ),
    "events": Schema(
        kind="events",
        columns=(
            CUSTOMER_ID,
            Column(
                "timestamp",
                "timestamp",
                synonyms=("time", "event_time", "datetime", "ts", "时间", "事件时间"),
            ),
            Column(
                "event_type", "event_type", synonyms=("event", "type", "action", "行为", "事件类型")
            ),
            Column(
                "item_id",
                "text",
                required=False,
                nullable=True,
                synonyms=("item", "sku", "product_id", "商品id"),
            ),
            Column(
                "category",
                "text",
                required=False,
                nullable=True,
                synonyms=("cat", "category_name", "类目", "品类"),
            ),
            Column(
                "price",
                "money",
                required=False,
                nullable=True,
                synonyms=("unit_price", "amount", "价格", "单价"),
            ),
            Column(
                "quantity", "int", required=False, nullable=True, synonyms=("qty", "count", "数量")
            ),
        ),
        key_columns=(
            "customer_id",
            "timestamp",
            "event_type",
            "item_id",
            "category",
            "price",
            "quantity",
        ),
    ),
    "treatments": Schema(
        kind="treatments",
        columns=(
            CUSTOMER_ID,
            Column(
                "arm", "arm", synonyms=("coupon", "coupon_code", "treatment", "group", "优惠券")
            ),
            Column(
                "assigned_at", "timestamp", synonyms=("assigned", "sent_at", "time", "发放时间")
            ),
            Column("propensity", "probability", synonyms=("probability", "p", "概率")),
            Column("converted", "bool", synonyms=("conversion", "purchased", "是否转化")),
            Column(
                "revenue",
                "money",
                required=False,
                nullable=True,
                synonyms=("order_value", "gmv", "收入"),
            ),
        ),
        key_columns=("customer_id", "arm", "assigned_at"),
    ),
    # One row per order after a campaign started; the rule that attributes it to a campaign's
    # assignment is in campaigns/imports/attribution.py.
    "outcomes": Schema(
        kind="outcomes",
        columns=(
            CUSTOMER_ID,
            Column(
                "order_id",
                "id",
                synonyms=("order", "orderid", "order_no", "order_number", "订单号", "订单id"),
                help="The shop's own id of the order, unique in the shop.",
            ),
            Column(
                "ordered_at",
                "timestamp",
                synonyms=("order_time", "ordered", "order_date", "time", "下单时间", "订单时间"),
            ),
            Column(
                "revenue",
                "money",
                synonyms=("net_revenue", "amount", "paid", "order_value", "实付金额", "收入"),
                help="What the customer paid, after any discount.",
            ),
            Column(
                "code",
                "text",
                required=False,
                nullable=True,
                synonyms=("coupon_code", "coupon", "voucher", "promo_code", "优惠码", "券码"),
                help="The coupon code redeemed on the order; empty when none.",
            ),
        ),
        key_columns=("order_id",),
    ),
}


def normalize_header(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().lstrip("\ufeff").lower())


def auto_mapping(kind: str, header: list[str]) -> dict[str, str]:
    """Map each source column to a target column by name or synonym; '' means 'not mapped'.

    For customers, unmatched columns map to themselves (as attributes).
    """
    schema = SCHEMAS[kind]
    lookup: dict[str, str] = {}
    for column in schema.columns:
        for alias in (column.name, *column.synonyms):
            lookup.setdefault(normalize_header(alias), column.name)
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for source in header:
        target = lookup.get(normalize_header(source), "")
        if target and target not in taken:
            mapping[source] = target
            taken.add(target)
        elif schema.extra_columns_are_attributes:
            mapping[source] = attribute_name(source)
        else:
            mapping[source] = ""
    return mapping


def attribute_name(source: str) -> str:
    return source.strip().lstrip("\ufeff")[:64] or "column"
