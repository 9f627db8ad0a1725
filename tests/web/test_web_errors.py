"""Refusals in the pages' language: a contract's revert reason has a zh-CN text in the
catalogue (`error.<reason>`), a market or platform rule with figures names itself in the
error's details (`details.rule`) and the catalogue has its zh-CN template (`rule.<name>`);
English keeps the message itself. `base.html`'s `apiError` does the same in the browser
(test_web_browser.py drives it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import crowdleverage
from crowdleverage.domain.errors import RuleViolation
from crowdleverage.market.rules import PriceBand, Side, check_order
from crowdleverage.web.i18n import STRINGS, translator

SRC = Path(crowdleverage.__file__).parent
CONTRACTS = "\n".join(p.read_text() for p in (SRC / "contracts").glob("*.vy"))
HAN = re.compile(r"[\u4e00-\u9fff]")


def test_every_catalogued_reason_is_a_revert_string_of_the_contracts() -> None:
    reasons = [k.removeprefix("error.") for k in STRINGS if k.startswith("error.") and ": " in k]
    assert len(reasons) >= 30
    for reason in reasons:
        assert f'"{reason}"' in CONTRACTS, f"{reason!r} is not a revert string of the contracts"
        zh, en = STRINGS[f"error.{reason}"]
        assert HAN.search(zh) and en == reason


def test_every_rule_the_code_names_has_a_template_in_both_languages() -> None:
    named = set()
    for path in SRC.rglob("*.py"):
        named |= set(re.findall(r'\brule="(\w+)"', path.read_text()))
        named |= set(re.findall(r'"rule": "(\w+)"', path.read_text()))
    assert {"price_band", "lot", "sellable", "sellable_t1", "halted", "available"} <= named
    for name in named:
        zh, en = STRINGS[f"rule.{name}"]
        assert HAN.search(zh) and not HAN.search(en)
        assert set(re.findall(r"\{(\w+)\}", zh)) == set(re.findall(r"\{(\w+)\}", en))


@pytest.mark.parametrize(
    ("side", "qty", "price", "holding", "zh"),
    [
        (Side.BUY, 100, 2_000, 0, "价格 20.00 元不在当日涨跌停范围 9.00–11.00 元内"),
        (Side.BUY, 150, 1_000, 0, "买入数量 150 股须为 100 股的整数倍"),
        (Side.SELL, 300, 1_000, 200, "卖出数量 300 股超过可卖数量 200 股"),
        (Side.SELL, 150, 1_000, 200, "卖出数量 150 股含零股；零股只能随全部持仓一次卖出"),
        (Side.BUY, 100, 0, 0, "价格须大于零"),
    ],
)
def test_a_market_rule_reads_in_chinese_with_its_figures(
    side: Side, qty: int, price: int, holding: int, zh: str
) -> None:
    with pytest.raises(RuleViolation) as err:
        check_order(side, qty, price, PriceBand(900, 1_100, 1_000), holding=holding)
    e = err.value
    assert translator("zh").error(e.code, e.message, e.to_dict()["details"]) == zh
    assert translator("en").error(e.code, e.message, e.details) == e.message


def test_a_revert_reason_reads_in_chinese_and_an_unknown_one_by_its_code() -> None:
    zh = translator("zh")
    reason = "stressed regime: no new financing"
    assert zh.error("contract_revert", reason, {"reason": reason}) == STRINGS[f"error.{reason}"][0]
    assert zh.error("contract_revert", "pool: not connected") == STRINGS["error.contract_revert"][0]
    assert translator("en").error("contract_revert", reason) == reason
