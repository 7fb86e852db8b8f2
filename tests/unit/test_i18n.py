"""English and Simplified Chinese: the catalogue is complete and compiled, each user's language
is kept and used on every page and chart, and the navigation bar's switch is a safe POST."""

from __future__ import annotations

import ast
import gettext
import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation.template import templatize

from campaigns.choices import LIFECYCLE_LABELS, lifecycle_label
from campaigns.models import UserPreference
from campaigns.preferences import SESSION_LANGUAGE
from campaigns.services import campaign_create
from campaigns.strategies import strategy_compute
from modeling import charts as model_charts
from tests.factories import PASSWORD, ModelVersionFactory
from tests.scored import scored_merchant

BASE = Path(settings.BASE_DIR)
CATALOGUE = BASE / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
SOURCES = ("campaigns", "modeling", "promo_portal")
HAN = re.compile(r"[\u4e00-\u9fff]")
LANGUAGE_URL = reverse("language")
# Python's %-placeholders: %(name)s, %s, %d, %.1f, %% ...
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
PLOTLY_PLACEHOLDER = re.compile(r"%\{[^}]*\}")
PO_LINE = re.compile(r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (\".*\")$")


# --- the catalogue -------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    return ast.literal_eval(text)  # a .po string is a valid Python string literal


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file (header included) as dicts: ctxt, id, plural, strs, flags."""
    entries, entry, field = [], None, None
    for raw in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = raw.strip()
        if not line:
            if entry and entry["id"] is not None:
                entries.append(entry)
            entry, field = None, None
            continue
        entry = entry or {"ctxt": None, "id": None, "plural": None, "strs": {}, "flags": set()}
        if line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif match := PO_LINE.match(line):
            name, index, value = match.groups()
            if name.startswith("msgstr"):
                field = ("strs", int(index or 0))
                entry["strs"][field[1]] = _unquote(value)
            else:
                field = {"msgctxt": "ctxt", "msgid": "id", "msgid_plural": "plural"}[name]
                entry[field] = _unquote(value)
        elif line.startswith('"'):
            if isinstance(field, tuple):
                entry["strs"][field[1]] += _unquote(line)
            else:
                entry[field] += _unquote(line)
        else:
            raise AssertionError(f"cannot read this line of {path.name}: {raw!r}")
    return entries


@pytest.fixture(scope="module")
def catalogue() -> list[dict]:
    return read_po(CATALOGUE)


def _key(entry: dict) -> str:
    return entry["id"] if entry["ctxt"] is None else f"{entry['ctxt']}\x04{entry['id']}"


def test_every_message_is_translated_and_none_is_fuzzy(catalogue):
    header, *messages = catalogue
    assert header["id"] == ""
    assert "fuzzy" not in header["flags"]
    assert "nplurals=1; plural=0;" in header["strs"][0]
    assert len(messages) > 700
    untranslated = [_key(e) for e in messages if not all(e["strs"].values())]
    fuzzy = [_key(e) for e in messages if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []
    # Chinese has one plural form: a second one would be ignored, or wrong.
    assert [_key(e) for e in messages if e["plural"] is not None and set(e["strs"]) != {0}] == []


def test_translations_keep_every_placeholder(catalogue):
    wrong = []
    for entry in catalogue[1:]:
        sources = [entry["id"]] + ([entry["plural"]] if entry["plural"] else [])
        for text in entry["strs"].values():
            for pattern in (PLACEHOLDER, PLOTLY_PLACEHOLDER):
                if pattern is PLACEHOLDER and "python-format" not in entry["flags"]:
                    continue
                wanted = {p for source in sources for p in pattern.findall(source)}
                if set(pattern.findall(text)) != wanted:
                    wrong.append((_key(entry), text))
    assert wrong == []


def test_the_compiled_catalogue_is_the_po_file(catalogue):
    # given the .mo that Django reads (committed, so a checkout needs no msgfmt)
    with COMPILED.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)

    # then it holds exactly the .po's translations: it was compiled after the last edit
    expected = {}
    for entry in catalogue[1:]:
        if entry["plural"] is None:
            expected[_key(entry)] = entry["strs"][0]
        else:
            expected[(_key(entry), 0)] = entry["strs"][0]
    actual = {key: value for key, value in compiled._catalog.items() if key != ""}
    assert actual == expected


def _translation_calls_in_python(path: Path) -> set[tuple[str | None, str]]:
    """(context, msgid) of every gettext call with literal arguments in a Python module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: dict[str, bool] = {}  # local name -> takes a context first
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
            for alias in node.names:
                if "gettext" in alias.name and alias.name != "gettext_noop":
                    names[alias.asname or alias.name] = alias.name.startswith(("pgettext", "np"))
    found = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in names:
            continue
        args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
        context = args.pop(0) if names[node.func.id] else None
        if args and isinstance(args[0], str):
            found.add((context, args[0]))
    return found


_LITERAL = r"""[ur]?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_TEMPLATE_CALL = re.compile(
    rf"\b(gettext|pgettext|ngettext|npgettext)\(\s*({_LITERAL}(?:\s*,\s*{_LITERAL})*)"
)


def _translation_calls_in_template(path: Path) -> set[tuple[str | None, str]]:
    """What makemessages extracts from a template: Django's templatize, then its calls."""
    source = templatize(path.read_text(encoding="utf-8"), origin=str(path))
    found = set()
    for function, arguments in _TEMPLATE_CALL.findall(source):
        values = list(ast.literal_eval(f"({arguments},)"))
        context = values.pop(0) if function in ("pgettext", "npgettext") else None
        found.add((context, values[0]))
    return found


def test_every_marked_string_is_in_the_catalogue(catalogue):
    """Fails when a string was marked (or changed) after the last makemessages: run it,
    translate the new entries in django.po, then compilemessages."""
    known = {(e["ctxt"], e["id"]) for e in catalogue[1:]}
    marked: dict[tuple[str | None, str], Path] = {}
    for folder in SOURCES:
        for path in sorted((BASE / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                marked.update(dict.fromkeys(_translation_calls_in_python(path), path))
    for path in sorted((BASE / "templates").rglob("*")):
        if path.suffix in (".html", ".txt"):
            marked.update(dict.fromkeys(_translation_calls_in_template(path), path))
    assert len(marked) > 700
    missing = sorted(
        f"{path.relative_to(BASE)}: {msgid!r}"
        for (context, msgid), path in marked.items()
        if (context, msgid) not in known
    )
    assert missing == []


def test_django_serves_the_translations():
    with translation.override("zh-hans"):
        assert translation.gettext("Campaigns") == "营销活动"
        assert translation.pgettext("list separator", ", ") == "、"
        assert translation.ngettext("%(n)s customer", "%(n)s customers", 5) == "%(n)s 位客户"
    with translation.override("en"):
        assert translation.gettext("Campaigns") == "Campaigns"


# --- pages in the user's language ----------------------------------------------------------------


def _prefer(user, language: str) -> None:
    UserPreference.objects.update_or_create(user=user, defaults={"language": language})


def _html_lang(page: str) -> str:
    return re.search(r'<html lang="([^"]+)">', page)[1]


def _figure(page: str, json_id: str) -> dict:
    match = re.search(rf'<script id="{json_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, json_id
    return json.loads(match.group(1))


def _titles(figure: dict) -> list[str]:
    """The chart's title and its axes' titles."""
    layout = figure["layout"]
    return [layout["title"]["text"]] + [layout[a]["title"]["text"] for a in ("xaxis", "yaxis")]


@pytest.fixture
def strategy(merchant_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    scored = scored_merchant(merchant_a, customers=120, seed=3)
    start = timezone.now() + timedelta(days=1)
    campaign = campaign_create(
        merchant=merchant_a,
        actor=None,
        coupon_types=["PCT10", "AMT20"],
        name="Spring",
        budget=Decimal("200"),
        starts_at=start,
        ends_at=start + timedelta(days=7),
        holdout_share=0.1,
        exploration_share=0.05,
    )
    return strategy_compute(campaign=campaign, version=scored.version)


@pytest.mark.django_db
def test_a_user_who_chose_chinese_gets_every_page_in_chinese(
    merchant_a, alice, client_for, strategy
):
    # given alice chose Simplified Chinese, and her browser asks for English
    _prefer(alice, "zh-hans")
    client = client_for(alice)
    version = ModelVersionFactory(
        merchant=merchant_a,
        number=99,
        arms=["control", "PCT10"],
        training_curves={"epochs": [{"epoch": 1, "loss": 0.6, "val_loss": 0.7}], "best_epoch": 1},
    )
    pages = {
        reverse("campaigns:home", kwargs={"merchant": "shop-a"}): "首页",
        reverse("data:overview", kwargs={"merchant": "shop-a"}): "最近导入",
        reverse("promo:campaigns", kwargs={"merchant": "shop-a"}): "新建营销活动",
        reverse("promo:coupons", kwargs={"merchant": "shop-a"}): "优惠券类型",
        reverse("modeling:models", kwargs={"merchant": "shop-a"}): "训练新模型",
        reverse("modeling:model", kwargs={"merchant": "shop-a", "version_id": version.pk}): (
            f"模型 v{version.number}"
        ),
        reverse("modeling:segments", kwargs={"merchant": "shop-a"}): "生命周期分群",
        reverse("modeling:jobs", kwargs={"merchant": "shop-a"}): "任务",
        reverse("campaigns:members", kwargs={"merchant": "shop-a"}): "邀请成员",
        reverse("promo:strategy", kwargs={"merchant": "shop-a", "strategy_id": strategy.pk}): (
            "有效前沿"
        ),
        reverse("api_token"): "API 令牌",
    }
    for url, chinese in pages.items():
        # when she opens the page
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")

        # then it is in Chinese, and says so
        page = response.content.decode()
        assert response.status_code == 200, url
        assert _html_lang(page) == "zh-hans", url
        assert response["Content-Language"] == "zh-hans", url
        assert chinese in page, url
        assert "Sign out" not in page and "退出登录" in page, url

    # and the charts' titles, axes and legends are in Chinese as well
    page = client.get(
        reverse("promo:strategy", kwargs={"merchant": "shop-a", "strategy_id": strategy.pk})
    ).content.decode()
    frontier = _figure(page, "frontier-data")
    assert frontier["layout"]["title"]["text"] == "有效前沿：各优惠券花费下的预期增量利润"  # noqa: RUF001
    assert [trace["name"] for trace in frontier["data"]] == [
        "提升模型",
        "最佳单一优惠券",
        "随机发放",
        "所选预算",
    ]
    allocation = _figure(page, "allocation-data")
    assert allocation["layout"]["xaxis"]["title"]["text"] == "生命周期分群"
    with translation.override("zh-hans"):
        segments = {lifecycle_label(key) for key in LIFECYCLE_LABELS}
    assert "活跃" in segments
    assert set(allocation["data"][0]["x"]) <= segments
    assert "不发券（含留出组）" in {t["name"] for t in allocation["data"]}  # noqa: RUF001
    for figure in (frontier, allocation):
        assert all(HAN.search(text) for text in _titles(figure)), _titles(figure)
    model_page = client.get(
        reverse("modeling:model", kwargs={"merchant": "shop-a", "version_id": version.pk})
    ).content.decode()
    training = _figure(model_page, "training-epochs-data")
    assert training["layout"]["title"]["text"] == "提升模型训练：每轮损失"  # noqa: RUF001
    assert [trace["name"] for trace in training["data"]] == ["训练集", "验证集"]


@pytest.mark.django_db
def test_the_same_pages_stay_in_english_for_a_user_who_chose_english(
    merchant_a, alice, client_for, strategy
):
    # given alice chose English, and her browser asks for Chinese
    _prefer(alice, "en")
    client = client_for(alice)
    url = reverse("promo:strategy", kwargs={"merchant": "shop-a", "strategy_id": strategy.pk})

    # when she opens the strategy page
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans,zh;q=0.9").content.decode()

    # then page and charts are in English
    assert _html_lang(page) == "en"
    assert "Sign out" in page
    assert not HAN.search(_figure(page, "frontier-data")["layout"]["title"]["text"])
    assert _figure(page, "allocation-data")["layout"]["xaxis"]["title"]["text"] == (
        "Lifecycle segment"
    )


@pytest.mark.django_db
def test_without_a_preference_the_browser_language_is_used(merchant_a, alice, client_for):
    client = client_for(alice)
    home = reverse("campaigns:home", kwargs={"merchant": "shop-a"})
    assert _html_lang(client.get(home, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()) == (
        "zh-hans"
    )
    assert _html_lang(client.get(home, HTTP_ACCEPT_LANGUAGE="en-GB").content.decode()) == "en"


def test_chart_builders_translate_when_called_not_when_imported():
    # given the model page's chart builders, called under each language
    evaluation = {
        "arms": {
            "PCT10": {
                "qini_curve": {
                    "share": [0, 0.5, 1],
                    "qini": [0, 0.04, 0.05],
                    "random": [0, 0.025, 0.05],
                    "perfect": [0, 0.08, 0.05],
                }
            }
        }
    }
    for language, title in (
        ("en", "Qini curve: coupon PCT10 against no coupon"),
        ("zh-hans", "Qini 曲线：优惠券 PCT10 对比不发券"),  # noqa: RUF001
    ):
        with translation.override(language):
            (figure,) = model_charts.qini_figures(evaluation)
            assert figure["figure"]["layout"]["title"]["text"] == title
            # plain strings only: the standard encoder refuses lazy translations
            text = json.dumps(figure, ensure_ascii=False)
            assert model_charts.method_label("lstm") in text


# --- the language switch -------------------------------------------------------------------------


@pytest.mark.django_db
def test_switching_stores_the_preference_and_the_next_page_follows(merchant_a, alice, client_for):
    # given alice on the home page, in English
    client = client_for(alice)
    home = reverse("campaigns:home", kwargs={"merchant": "shop-a"})
    page = client.get(home).content.decode()
    assert _html_lang(page) == "en"
    assert f'action="{LANGUAGE_URL}"' in page and 'value="zh-hans"' in page

    # when she picks Chinese in the navigation bar
    response = client.post(LANGUAGE_URL, {"language": "zh-hans", "next": home})

    # then her choice is stored and she is back on the page, now in Chinese
    assert response.status_code == 302
    assert response["Location"] == home
    assert UserPreference.objects.get(user=alice).language == "zh-hans"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    page = client.get(home).content.decode()
    assert _html_lang(page) == "zh-hans"
    assert "界面语言已切换为简体中文。" in page

    # and switching back updates the same row
    client.post(LANGUAGE_URL, {"language": "en", "next": home})
    assert list(UserPreference.objects.filter(user=alice).values_list("language", flat=True)) == [
        "en"
    ]
    assert _html_lang(client.get(home).content.decode()) == "en"


@pytest.mark.django_db
def test_the_preference_follows_the_user_to_a_new_session(merchant_a, alice, client_for):
    # given alice chose Chinese on one device
    client_for(alice).post(LANGUAGE_URL, {"language": "zh-hans"})

    # when she signs in on another one whose browser asks for English
    other = Client()
    other.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    page = other.get(
        reverse("campaigns:home", kwargs={"merchant": "shop-a"}), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()

    # then she gets Chinese there too
    assert _html_lang(page) == "zh-hans"
    assert other.session[SESSION_LANGUAGE] == "zh-hans"


@pytest.mark.django_db
def test_a_session_from_before_the_preference_reads_it_once(merchant_a, alice, client_for):
    _prefer(alice, "zh-hans")
    client = client_for(alice)
    session = client.session
    del session[SESSION_LANGUAGE]  # as a session started before this feature was deployed
    session.save()
    home = reverse("campaigns:home", kwargs={"merchant": "shop-a"})
    assert _html_lang(client.get(home).content.decode()) == "zh-hans"
    assert client.session[SESSION_LANGUAGE] == "zh-hans"


@pytest.mark.django_db
def test_get_is_refused(alice, client_for):
    assert client_for(alice).get(LANGUAGE_URL, {"language": "zh-hans"}).status_code == 405
    assert Client().get(LANGUAGE_URL).status_code == 405
    assert not UserPreference.objects.exists()


@pytest.mark.django_db
def test_a_post_without_the_csrf_token_is_refused(merchant_a, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    home = reverse("campaigns:home", kwargs={"merchant": "shop-a"})

    refused = client.post(LANGUAGE_URL, {"language": "zh-hans", "next": home})
    assert refused.status_code == 403
    assert not UserPreference.objects.exists()

    # with the token of the page's own form, the same post goes through
    page = client.get(home).content.decode()
    switch = re.search(r'data-testid="language-switch".*?</li>', page, re.S)[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', switch)[1]
    accepted = client.post(
        LANGUAGE_URL, {"language": "zh-hans", "next": home, "csrfmiddlewaretoken": token}
    )
    assert accepted.status_code == 302
    assert UserPreference.objects.get(user=alice).language == "zh-hans"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url", ["https://evil.example/phish", "//evil.example/", "javascript:alert(1)"]
)
def test_an_offsite_next_is_not_followed(alice, client_for, next_url):
    response = client_for(alice).post(LANGUAGE_URL, {"language": "zh-hans", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


@pytest.mark.django_db
def test_an_unknown_language_changes_nothing(alice, client_for):
    client = client_for(alice)
    response = client.post(LANGUAGE_URL, {"language": "fr", "next": reverse("api_token")})
    assert response.status_code == 302
    assert not UserPreference.objects.exists()
    assert _html_lang(client.get(reverse("api_token")).content.decode()) == "en"


@pytest.mark.django_db
def test_anonymous_visitors_switch_by_cookie(alice):
    # given someone on the sign-in page
    client = Client()
    login = reverse("login")
    page = client.get(login).content.decode()
    assert _html_lang(page) == "en"
    assert 'data-testid="language-switch"' in page

    # when they pick Chinese
    response = client.post(LANGUAGE_URL, {"language": "zh-hans", "next": login})

    # then Django's cookie carries it (nobody's preference is stored) and the page follows
    assert response.status_code == 302
    assert response["Location"] == login
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert not UserPreference.objects.exists()
    page = client.get(login).content.decode()
    assert _html_lang(page) == "zh-hans"
    assert "登录" in page


def test_amounts_keep_their_thousands_commas_in_chinese():
    from django.template import Context, Template
    from django.utils import translation

    template = Template("{% load portal humanize %}{{ v|money:'CNY' }} {{ n|intcomma }}")
    context = Context({"v": 1234567.891, "n": 1234567})
    for language in ("en", "zh-hans"):
        with translation.override(language):
            assert template.render(context) == "CNY 1,234,567.89 1,234,567"
