"""The borrower's margin page (融资融券): the engine's ratio, lines and the prices at which the
account reaches them, computed to the fen the engine's way.

The engine (contracts/MarginEngine.vy) values an account as

    assets = cash + pending + Σ floor(qty × conservative_price × haircut / 10000)
    ratio  = floor(assets × 10000 / debt)          (bps)

and an account is under a line L when `ratio < L`, i.e. when `assets × 10000 < L × debt`.
`line_price` inverts that for one position: the highest price (fen) at or below which the
account is under the line when only that stock moves. `whole_account_prices` finds the highest
common factor k/10⁶ by which every position's price can be scaled (each floored to the fen)
before the account is under the line. Both read every input from the chain (the oracle's
conservative price, the engine's haircut with its halted and new-listing rules), and
`MarginView.assets_check_fen` is the engine's own `account_state` assets, which the
reconstruction must equal to the fen (the page says so if it ever differs).
"""

from __future__ import annotations

import csv
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.margin import ENGINE, LIQUIDATOR, ORDERBOOK
from crowdleverage.chain.params import PARAMS, read_tier
from crowdleverage.chain.structs import read_reference
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ContractRevert
from crowdleverage.domain.params import stressed_lines
from crowdleverage.flows.platform import MarginAccount, Platform

log = logging.getLogger("crowdleverage.web")

BPS = 10_000
SCALE = 1_000_000  # the whole-account factor's resolution (1 ppm)
HALTED_HAIRCUT_BPS = 5_000  # contracts/constants.vy
ORACLE = "PriceOracle"

# Stock names: tushare's stock list (~Dec 2016), shipped unchanged with its provenance in
# data/README.md; the two indices of the demo file are named here.
STOCK_LIST = SHIPPED_DATA / "market" / "raw" / "ashare_stock_basics_tushare_2016-12.csv"
INDEX_NAMES = {"000001.SH": ("上证指数", "SSE Composite"), "000300.SH": ("沪深300", "CSI 300")}


@functools.cache
def stock_names() -> dict[str, str]:
    """code → name; without the shipped list (an install without data/) pages show codes."""
    try:
        with STOCK_LIST.open(encoding="utf-8") as f:
            return {row["code"]: row["name"] for row in csv.DictReader(f)}
    except OSError as exc:
        log.warning("stock list missing", extra={"path": str(STOCK_LIST), "error": exc.strerror})
        return {}


def stock_name(code: str, lang: str = "zh") -> str:
    if code in INDEX_NAMES:
        return INDEX_NAMES[code][1 if lang == "en" else 0]
    return stock_names().get(code, code)


# ── the engine's arithmetic ─────────────────────────────────────────────────────────────


def collateral_fen(qty: int, price_fen: int, haircut_bps: int) -> int:
    return qty * price_fen * haircut_bps // BPS


def ratio_bps(assets_fen: int, debt_fen: int) -> int | None:
    return None if debt_fen == 0 else assets_fen * BPS // debt_fen


def under(assets_fen: int, debt_fen: int, line_bps: int) -> bool:
    """The engine's `ratio < line` (ratio floored to the bp)."""
    return debt_fen > 0 and assets_fen * BPS // debt_fen < line_bps


def line_price(
    other_fen: int, qty: int, haircut_bps: int, debt_fen: int, line_bps: int
) -> int | None:
    """Highest price (fen, ≥ 0) of one position at which the account is under `line_bps`, the
    rest of the account (`other_fen` of assets) unchanged; None when no price gets it there
    (no debt, or the rest alone keeps it above the line)."""
    if debt_fen == 0:
        return None
    need = -(-line_bps * debt_fen // BPS)  # under ⇔ assets < need
    room = need - other_fen  # under ⇔ floor(qty·P·h/BPS) < room ⇔ qty·P·h < room·BPS
    if room <= 0:
        return None
    if qty == 0 or haircut_bps == 0:
        return 10**12  # any price: the position counts nothing
    return -(-room * BPS // (qty * haircut_bps)) - 1


@dataclass
class Holding:
    code: str
    quantity: int
    sellable: int
    last_fen: int  # the replay's price (Platform.quote)
    halted: bool
    sealed: bool
    engine_price_fen: int  # the oracle's conservative price the engine values it at
    haircut_bps: int
    collateral_fen: int
    cost_fen: int | None  # average cost per share (fees included), None if unknown
    lines: dict[str, int | None] = field(default_factory=dict)  # single-stock line prices
    whole: dict[str, int | None] = field(default_factory=dict)  # whole-account line prices
    liq: str | None = None  # None | "pending_sell" | "halted" | "sealed" | "t1"

    @property
    def market_value_fen(self) -> int:
        return self.quantity * self.last_fen

    @property
    def pnl_fen(self) -> int | None:
        return None if self.cost_fen is None else (self.last_fen - self.cost_fen) * self.quantity


@dataclass
class MarginView:
    account_id: int
    tier: int
    status: str
    cash_fen: int
    reserve_fen: int
    pending_fen: int
    debt_fen: int
    assets_fen: int  # reconstructed the engine's way
    assets_check_fen: int  # the engine's account_state
    ratio_bps: int | None
    initial_bps: int
    warning_bps: int
    liquidation_bps: int
    holdings: list[Holding]
    whole_factor: dict[str, int | None]  # ppm of today's prices at which each line is reached
    stressed: bool = False  # the regime in force: lines and haircuts at their stressed values
    # the NAV stop: below these assets the Liquidator closes the account in full (None: no
    # reference recorded yet, the stop is off, or a Liquidator deployed before the stop)
    stop_assets_fen: int | None = None
    nav_stop_bps: int = 0

    @property
    def market_value_fen(self) -> int:
        return sum(h.market_value_fen for h in self.holdings)

    @property
    def available_fen(self) -> int:
        """可用保证金: assets above what the initial line needs for the debt."""
        return max(0, self.assets_fen - (-(-self.initial_bps * self.debt_fen // BPS)))

    @property
    def top_up_fen(self) -> int:
        """追加保证金: cash that brings the ratio back to the initial line (0 unless under the
        warning line)."""
        if self.ratio_bps is None or self.ratio_bps >= self.warning_bps:
            return 0
        return max(0, -(-self.initial_bps * self.debt_fen // BPS) - self.assets_fen)

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "ratio_bps": self.ratio_bps,
            "debt_fen": self.debt_fen,
            "assets_fen": self.assets_fen,
            "warning_bps": self.warning_bps,
            "liquidation_bps": self.liquidation_bps,
            "initial_bps": self.initial_bps,
            "stressed": self.stressed,
            "nav_stop_bps": self.nav_stop_bps,
            "stop_assets_fen": self.stop_assets_fen,
            "holdings": [
                {"code": h.code, "quantity": h.quantity, "engine_price_fen": h.engine_price_fen,
                 "haircut_bps": h.haircut_bps, "lines": h.lines, "whole": h.whole}
                for h in self.holdings
            ],
        }  # fmt: skip


def _haircut(p: Platform, code_int: int, day: int, halted: bool) -> int:
    """MarginEngine's valuation haircut: `RiskParams.haircut` (board, ST, new listing; its
    stressed value while the regime is stressed), capped while halted."""
    haircut = int(p.chain.call(PARAMS, "haircut", code_int, day))
    return min(haircut, HALTED_HAIRCUT_BPS) if halted and haircut else haircut


def _avg_costs(p: Platform, account_id: int) -> dict[str, tuple[int, int]]:
    """(shares, cost fen incl. fees) per code from the account's fills, oldest first; a sale
    takes its share of the cost out at the average (cost per share unchanged)."""
    book: dict[str, tuple[int, int]] = {}
    for o in reversed(p.orders_of(account_id)):
        if not o.filled_qty:
            continue
        qty, cost = book.get(o.code, (0, 0))
        if o.side == "buy":
            book[o.code] = (qty + o.filled_qty, cost + o.filled_value_fen + o.fees_fen)
        elif qty:
            left = max(0, qty - o.filled_qty)
            book[o.code] = (left, cost * left // qty)
    return book


def _whole_account(
    rest_fen: int, hs: list[Holding], debt_fen: int, line_bps: int
) -> tuple[int | None, dict[str, int]]:
    """Largest factor k (ppm of each engine price, each floored to the fen) with the account
    under the line; None when even k = 0 keeps it above, SCALE when it is under now."""

    def assets(k: int) -> int:
        return rest_fen + sum(
            collateral_fen(h.quantity, h.engine_price_fen * k // SCALE, h.haircut_bps) for h in hs
        )

    if debt_fen == 0 or not under(assets(0), debt_fen, line_bps):
        return None, {}
    if under(assets(SCALE), debt_fen, line_bps):
        k = SCALE
    else:
        lo, hi = 0, SCALE  # under(lo) and not under(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if under(assets(mid), debt_fen, line_bps) else (lo, mid)
        k = lo
    return k, {h.code: h.engine_price_fen * k // SCALE for h in hs}


def nav_stop_assets(
    debt_fen: int, ref_assets_fen: int, ref_equity_fen: int, stop_bps: int
) -> int | None:
    """The assets (fen) below which the Liquidator's NAV stop closes the account: it acts
    when assets·BPS + stop·ref_assets < (debt + ref_equity)·BPS. Rounded up, so an account
    shown at or above the figure is never one the contract stops (while its ratio is below the
    stop's `nav_stop_below_bps`). None without a reference or with the stop off."""
    if stop_bps == 0 or ref_assets_fen == 0 or debt_fen == 0:
        return None
    return max(0, -(-((debt_fen + ref_equity_fen) * BPS - stop_bps * ref_assets_fen) // BPS))


def _nav_stop(p: Platform, who: str) -> tuple[int, int, int]:
    """(stop bps, reference assets, reference equity) from the Liquidator; zeros on a
    Liquidator deployed before the stop (its calls revert)."""
    try:
        stop = int(p.chain.call(LIQUIDATOR, "nav_stop_bps"))
        ref = read_reference(p.chain, who)
    except ContractRevert:
        return 0, 0, 0
    return stop, ref.assets, ref.equity


def margin_view(p: Platform, acc: MarginAccount) -> MarginView:
    """Read the account, its positions and the engine's valuation inputs (under the lock)."""
    with p.lock:
        view = p.account_view(acc)
        # the engine's lines as the contract enforces them (they rise in a stressed regime)
        tier = read_tier(p.chain, acc.tier)
        initial_bps, warning_bps, liquidation_bps = (
            tier.initial_ratio_bps,
            tier.warning_ratio_bps,
            tier.liquidation_ratio_bps,
        )
        stressed = int(p.chain.call(ORDERBOOK, "regime")) == 1
        if stressed:  # the Liquidator's lines; RiskParams.haircut gives the stressed haircuts
            line_bps = int(p.chain.call(LIQUIDATOR, "stressed_line_bps"))
            warning_bps, liquidation_bps = stressed_lines(tier, line_bps)
        who = p.fin.address(acc.owner_id)
        assets_engine, _debt, _ratio = (int(x) for x in p.chain.call(ENGINE, "account_state", who))
        day = int(p.chain.call(ORACLE, "trading_day"))
        costs = _avg_costs(p, acc.id)
        stop_bps, ref_assets, ref_equity = _nav_stop(p, who)
        liquidating = view.locked or view.open_liquidation
        waiting = {
            w["code"]: w["reason"] for w in p.waiting_liquidations() if w["account_id"] == acc.id
        }
        hs = []
        for pos in p.positions(acc):
            c = code_to_chain(pos["code"])
            halted = bool(p.chain.call(ORACLE, "halted", c))
            px = int(p.chain.call(ORACLE, "conservative_price", c))
            haircut = _haircut(p, c, day, halted)
            q = p.quote(pos["code"])
            n, cost = costs.get(pos["code"], (0, 0))
            reason = waiting.get(pos["code"])
            liq = None
            if liquidating:
                liq = {"halted": "halted", "sealed limit-down": "sealed", "T+1 locked": "t1"}.get(
                    reason or "", "pending_sell"
                )
            hs.append(
                Holding(
                    code=pos["code"], quantity=pos["quantity"], sellable=pos["sellable"],
                    last_fen=pos["price_fen"], halted=pos["halted"], sealed=q.at_limit_down,
                    engine_price_fen=px, haircut_bps=haircut,
                    collateral_fen=collateral_fen(pos["quantity"], px, haircut),
                    cost_fen=-(-cost // pos["quantity"]) if n else None,
                    liq=liq,
                )
            )  # fmt: skip
        status = p.status(view, acc.tier).value
    rest = view.cash_fen + view.pending_fen
    assets = rest + sum(h.collateral_fen for h in hs)
    lines = {"warning": warning_bps, "liquidation": liquidation_bps}
    factors: dict[str, int | None] = {}
    for name, line in lines.items():
        k, prices = _whole_account(rest, hs, view.debt_fen, line)
        factors[name] = k
        for h in hs:
            other = assets - h.collateral_fen
            h.lines[name] = line_price(other, h.quantity, h.haircut_bps, view.debt_fen, line)
            h.whole[name] = prices.get(h.code)
    return MarginView(
        account_id=acc.id, tier=acc.tier, status=status, cash_fen=view.cash_fen,
        reserve_fen=view.reserve_fen, pending_fen=view.pending_fen, debt_fen=view.debt_fen,
        assets_fen=assets, assets_check_fen=assets_engine, ratio_bps=view.ratio_bps,
        initial_bps=initial_bps, warning_bps=warning_bps,
        liquidation_bps=liquidation_bps, holdings=hs, whole_factor=factors, stressed=stressed,
        stop_assets_fen=nav_stop_assets(view.debt_fen, ref_assets, ref_equity, stop_bps),
        nav_stop_bps=stop_bps,
    )  # fmt: skip
