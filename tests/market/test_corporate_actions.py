"""Corporate-action file, reference price, inference and dividend tax, on the shipped real
data (unadjusted tushare bars of 2016 and the action file) and on broken rows."""

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.domain.errors import DataFileError, InvalidInput, OutOfRange
from crowdleverage.market.bars import read_bars
from crowdleverage.market.convert import convert
from crowdleverage.market.corporate_actions import (
    Lot,
    check_references,
    entitlement,
    explain,
    infer_actions,
    parse_actions,
    read_actions,
    tax_rate_bps,
    with_reference_prices,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "market"
ACTIONS = DATA / "corporate_actions.csv"
UNADJUSTED = DATA / "ashare_unadjusted_2016-04_2016-10.csv"
HEADER = "code,ex_date,record_date,pay_date,bonus_per_10,transfer_per_10,cash_per_10_yuan,source\n"
GOOD = "000027,2016-06-28,2016-06-27,2016-06-28,0,0,2.00,inferred: test\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def bars():  # type: ignore[no-untyped-def]
    return read_bars(UNADJUSTED)


@pytest.fixture(scope="module")
def actions():  # type: ignore[no-untyped-def]
    return read_actions(ACTIONS)


def test_shipped_file_loads_with_provenance(actions) -> None:  # type: ignore[no-untyped-def]
    assert len(actions) == 10
    assert all(a.source.split(":")[0] in ("published", "inferred") for a in actions)
    sy = next(a for a in actions if a.code == "002580")  # 圣阳股份: 10转增8派1.00 (notice)
    assert (sy.transfer_per_10_u, sy.cash_per_10_u) == (8_000_000, 1_000_000)
    assert sy.new_quantity(1_000) == 1_800 and sy.gross_cash_fen(1_000) == 10_000


def test_reference_price_equals_the_exchanges_previous_close(bars, actions) -> None:  # type: ignore[no-untyped-def]
    """Every action with bars: the reference price computed from the previous close is the
    previous close the exchange published on the ex-date (half-up to the fen)."""
    checks = [c for c in check_references(bars, actions) if c.status != "no-bars"]
    assert {c.action.code for c in checks} == {
        "000001",
        "000002",
        "000027",
        "000056",
        "000333",
        "000420",
    }
    assert all(c.status == "matches" for c in checks), [c.as_dict() for c in checks]
    by = {c.action.code: c for c in checks}
    assert (by["000056"].prev_close_fen, by["000056"].reference_fen) == (2557, 1279)  # 1278.5 ↑
    assert (by["000001"].prev_close_fen, by["000001"].reference_fen) == (1044, 857)


def test_reference_price_replaces_a_plain_previous_close(bars, actions) -> None:  # type: ignore[no-untyped-def]
    """A bar file that carries the plain previous close on the ex-date (as a converter that
    chains closes would) gets the reference price and the band recomputed from it."""
    import dataclasses

    from crowdleverage.market.bars import with_band

    ex = dt.date(2016, 10, 12)
    plain = [
        with_band(dataclasses.replace(b, prev_close=802, band=None))
        if (b.code, b.date) == ("000420", ex) else b
        for b in bars
    ]  # fmt: skip
    fixed = {(b.code, b.date): b for b in with_reference_prices(plain, actions)}
    bar = fixed[("000420", ex)]
    assert bar.prev_close == 401 and bar.band is not None
    assert (bar.band.limit_down_fen, bar.band.limit_up_fen) == (361, 441)
    odd = [dataclasses.replace(b, prev_close=700) if (b.code, b.date) == ("000420", ex) else b
           for b in bars]  # fmt: skip
    with pytest.raises(InvalidInput, match="neither the previous close 802 nor the reference"):
        with_reference_prices(odd, actions)


def test_infer_on_real_bars_finds_the_six_ex_dates(bars, actions) -> None:  # type: ignore[no-untyped-def]
    props = infer_actions(bars, actions)
    got = {(p.code, p.ex_date.isoformat()): p for p in props}
    assert set(got) == {
        ("000333", "2016-05-06"), ("000001", "2016-06-16"), ("000027", "2016-06-28"),
        ("000056", "2016-07-08"), ("000002", "2016-07-29"), ("000420", "2016-10-12"),
    }  # fmt: skip
    assert all(p.known for p in props)
    assert (got[("000420", "2016-10-12")].kind, got[("000420", "2016-10-12")].shares_per_10) == (
        "shares",
        10,
    )
    assert got[("000420", "2016-10-12")].factor == 0.5
    assert (
        got[("000027", "2016-06-28")].kind,
        got[("000027", "2016-06-28")].cash_per_share_fen,
    ) == ("cash", 20)
    p = got[("000001", "2016-06-16")]
    assert (p.kind, p.shares_per_10, p.cash_per_share_fen) == ("shares+cash", 2, 16)


def test_infer_on_the_adjusted_demo_file_sees_only_rounding() -> None:
    """The shipped demo file is forward-adjusted: no ex-date is visible, only the converter's
    snapping of limit prices (below 0.6%)."""
    demo = read_bars(DATA / "ashare_sample_2015-11_2016-03.csv")
    props = infer_actions(demo)
    assert props and max(abs(p.change_bps) for p in props) < 60
    assert infer_actions(demo, min_change_bps=60) == []


def test_tushare_hist_converter_keeps_the_exchanges_previous_close(tmp_path: Path) -> None:
    raw = DATA / "raw" / "tushare_hist" / "000420.csv"
    bars, rep = convert("tushare-hist", raw, dt.date(2016, 10, 10), dt.date(2016, 10, 14))
    ex = {b.date: b for b in bars}
    assert ex[dt.date(2016, 10, 11)].close == 802
    assert ex[dt.date(2016, 10, 12)].prev_close == 401  # close − price_change: the reference
    assert rep.bars_out == 5 and all(b.amount == 0 for b in bars)
    broken = tmp_path / "000420.csv"
    lines = raw.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("2016-10-12,"))
    lines[i] = lines[i].replace("2016-10-12,", "2016-10-12,x", 1)
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=f"{broken}:{i + 1}: open 'x"):
        convert("tushare-hist", broken, dt.date(2016, 10, 10), dt.date(2016, 10, 14))


def test_explain() -> None:
    assert explain(1000, 1000) == ("increase", None, None)
    assert explain(1000, 1010) == ("increase", None, None)
    assert explain(3299, 2119) == ("shares+cash", 5, 121)  # 美的 2016: 10转5派12
    assert explain(2000, 1000) == ("shares", 10, None)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            "000027,2016-06-28,2016-06-24,2016-06-28,0,0,2,inferred: x\n",
            "must be the trading day before",
        ),
        ("000027,2016-06-26,2016-06-24,2016-06-28,0,0,2,inferred: x\n", "not an XSHG trading day"),
        ("000027,2016-06-28,2016-06-27,2016-06-27,0,0,2,inferred: x\n", "is before ex_date"),
        ("000027,2016-06-28,2016-06-27,2016-06-28,0,0,0,inferred: x\n", "not a corporate action"),
        ("000027,2016-06-28,2016-06-27,2016-06-28,-1,0,2,inferred: x\n", "non-negative"),
        ("000027,2016-06-28,2016-06-27,2016-06-28,0,0,2.0000001,inferred: x\n", "six decimal"),
        ("000027,2016-06-28,2016-06-27,2016-06-28,0,0,abc,inferred: x\n", "not a number"),
        ("000027,2016-06-28,2016-06-27,2016-06-28,0,0,2,from a friend\n", "source must read"),
        ("000300.SH,2016-06-28,2016-06-27,2016-06-28,0,0,2,inferred: x\n", "is an index"),
        ("000027,2016/06/28,2016-06-27,2016-06-28,0,0,2,inferred: x\n", "not YYYY-MM-DD"),
        ("000027,2016-06-28,2016-06-27\n", "wrong number of fields"),
        (GOOD, "duplicate row for 000027"),
    ],
)
def test_loader_rejects_broken_rows_with_file_and_line(row: str, reason: str) -> None:
    with pytest.raises(DataFileError, match=reason) as err:
        parse_actions(HEADER + GOOD + row, "ca.csv")
    assert err.value.details["line"] == 3 and err.value.details["path"] == "ca.csv"


def test_loader_rejects_bad_headers_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="missing column"):
        parse_actions("code,ex_date\n000027,2016-06-28\n")
    with pytest.raises(DataFileError, match="unknown column"):
        parse_actions(HEADER.strip() + ",rights_per_10\n" + GOOD.strip() + ",3\n")
    with pytest.raises(DataFileError, match="no rows"):
        parse_actions(HEADER)
    with pytest.raises(DataFileError, match="file not found"):
        read_actions(tmp_path / "none.csv")


def test_tax_rates_by_holding_period_and_date() -> None:
    # 2013-01-01 … 2015-09-07 (财税〔2012〕85号): 20 / 10 / 5 %
    paid = dt.date(2015, 5, 28)
    assert tax_rate_bps(dt.date(2015, 4, 28), paid) == 2_000  # exactly one month: ≤ 1 month
    assert tax_rate_bps(dt.date(2015, 4, 27), paid) == 1_000
    assert tax_rate_bps(dt.date(2014, 5, 28), paid) == 1_000  # exactly one year
    assert tax_rate_bps(dt.date(2014, 5, 27), paid) == 500
    # from 2015-09-08 (财税〔2015〕101号): over a year exempt
    assert tax_rate_bps(dt.date(2014, 5, 27), dt.date(2015, 9, 7)) == 500
    assert tax_rate_bps(dt.date(2014, 5, 27), dt.date(2015, 9, 8)) == 0
    assert tax_rate_bps(dt.date(2016, 6, 1), dt.date(2016, 6, 28)) == 2_000
    with pytest.raises(OutOfRange):
        tax_rate_bps(dt.date(2012, 1, 4), dt.date(2012, 6, 1))
    with pytest.raises(InvalidInput):
        tax_rate_bps(dt.date(2016, 7, 1), dt.date(2016, 6, 28))


def test_entitlement_matches_the_published_top_up_amounts(actions) -> None:  # type: ignore[no-untyped-def]
    """拓日新能 2015: 0.50 元 per 10 before tax; the notice's extra tax per 10 shares is 0.075
    元 (≤ 1 month) and 0.025 元 (1 month–1 year) on top of 0.025 withheld (5%)."""
    a = next(a for a in actions if a.code == "002218")
    short = entitlement(a, [Lot(10_000, dt.date(2015, 5, 20))])
    mid = entitlement(a, [Lot(10_000, dt.date(2015, 1, 5))])
    long = entitlement(a, [Lot(10_000, dt.date(2013, 1, 4))])
    assert short.gross_cash_fen == 50_000
    assert (short.tax_fen, mid.tax_fen, long.tax_fen) == (10_000, 5_000, 2_500)
    assert short.net_cash_fen == 40_000 and short.new_qty == 10_000
    mixed = entitlement(a, [Lot(4_000, dt.date(2013, 1, 4)), Lot(6_000, dt.date(2015, 5, 20))])
    assert mixed.tax_fen == 1_000 + 6_000


def test_entitlement_bonus_shares_taxed_at_par_transfer_not(actions) -> None:  # type: ignore[no-untyped-def]
    pa = next(a for a in actions if a.code == "000001")  # 10送2派1.53
    e = entitlement(pa, [Lot(1_000, dt.date(2016, 6, 1))])  # ≤ 1 month: 20%
    assert (e.qty, e.new_qty, e.gross_cash_fen) == (1_000, 1_200, 15_300)
    # taxable: 153 元 cash + 200 bonus shares × 1 元 par = 353 元 → 70.60 元
    assert (e.tax_fen, e.net_cash_fen, e.tax_unwithheld_fen) == (7_060, 8_240, 0)
    sz = next(a for a in actions if a.code == "000420")  # 10转增10, no cash: nothing taxed
    e = entitlement(sz, [Lot(1_001, dt.date(2016, 10, 1))])
    assert (e.new_qty, e.gross_cash_fen, e.tax_fen) == (2_002, 0, 0)


def test_cli_validate_check_and_infer() -> None:
    res = runner.invoke(
        app, ["market", "corporate-actions", str(ACTIONS), "--data", str(UNADJUSTED), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["actions"]) == 10
    assert sum(c["status"] == "matches" for c in out["checks"]) == 6
    res = runner.invoke(
        app, ["market", "corporate-actions", "--infer", "--data", str(UNADJUSTED), "--json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["code"], r["kind"]) for r in rows][:2] == [
        ("000333", "shares+cash"),
        ("000001", "shares+cash"),
    ]
    assert not any(r["known"] for r in rows)


def test_cli_exit_codes(tmp_path: Path) -> None:
    broken = tmp_path / "ca.csv"
    broken.write_text(HEADER + "000027,2016-06-28,2016-06-27,2016-06-28,0,0,x,inferred: t\n")
    res = runner.invoke(app, ["market", "corporate-actions", str(broken), "--json"])
    assert res.exit_code == 2
    err = json.loads(res.stderr)
    assert err["details"]["line"] == 2 and "not a number" in err["message"]
    res = runner.invoke(app, ["market", "corporate-actions", "--infer"])
    assert res.exit_code == 2 and "--infer needs --data" in res.stderr
    wrong = tmp_path / "wrong.csv"  # 000027 with 3.00 元: reference 624, the bars say 634
    wrong.write_text(HEADER + "000027,2016-06-28,2016-06-27,2016-06-28,0,0,3.00,inferred: t\n")
    res = runner.invoke(app, ["market", "corporate-actions", str(wrong), "--data", str(UNADJUSTED)])
    assert res.exit_code == 6 and "000027 2016-06-28" in res.stderr


def test_shipped_unadjusted_file_is_the_conversion_of_the_raw_files() -> None:
    codes = ("000001", "000002", "000027", "000056", "000333", "000420")
    converted = []
    for code in codes:
        raw = DATA / "raw" / "tushare_hist" / f"{code}.csv"
        bars, _ = convert("tushare-hist", raw, dt.date(2016, 4, 5), dt.date(2016, 10, 31))
        converted.extend(bars)
    converted.sort(key=lambda b: (b.date, b.code))
    assert [b.row() for b in converted] == [b.row() for b in read_bars(UNADJUSTED)]
