"""The shipped data a stress run stands on, and the models fitted to it.

- `load_panel`: the real stocks of the demo file (333 A-shares, 2015-11-26 → 2016-03-31) as
  (day × stock) arrays: close, previous close, sealed at limit-down, locked, halted, amount,
  and `liquidity`: the 20-day average traded amount the platform publishes before each day's
  session (`risk/regime.py` `average_amounts` over the closes before the day, `rolling_amounts`).
- `load_index`: the CSI 300 (NetEase file, 2002 → 2020) or the Shanghai Composite (2013 → 2020).
- `fit_factor_model`: a one-factor model of the shipped stocks on the CSI 300: per stock a
  beta, an idiosyncratic volatility, its average daily amount and board; the tails of the
  residuals (a Student-t degree of freedom from their kurtosis); a halt (suspension) Markov
  chain; and the *seal magnet*: how far above the limit-down price a latent move already ends
  sealed (磁吸效应), chosen so that the model's expected number of stocks sealed at limit-down,
  summed over every day of the sample, equals the observed number.
- `fit_garch`: a GARCH(1,1) with Student-t innovations (`arch`) on the CSI 300's daily returns,
  for Monte Carlo.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.security import Board, Security
from crowdleverage.market.bars import read_bars
from crowdleverage.market.convert import convert_netease
from crowdleverage.market.rules import limit_bps
from crowdleverage.risk.regime import ADV_DAYS, traded_amount

log = logging.getLogger("crowdleverage.stress")

STOCK_FILE = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
CSI300_FILE = SHIPPED_DATA / "market" / "raw" / "idx_000300_163.csv"
SH_FILE = SHIPPED_DATA / "market" / "sh000001_2013_2020.csv"
INDEX_FILES = {"csi300": CSI300_FILE, "sh000001": SH_FILE}


@dataclass(frozen=True)
class Panel:
    codes: tuple[str, ...]
    dates: tuple[dt.date, ...]
    close: np.ndarray  # (D, S) fen, NaN where the stock has no row
    prev_close: np.ndarray
    sealed_down: np.ndarray  # (D, S) bool
    locked_down: np.ndarray
    halted: np.ndarray
    present: np.ndarray
    amount: np.ndarray  # fen
    # (D, S) int64 fen: the 20-day average traded amount published at the close before day d
    # (risk/regime.py `average_amounts` up to the previous trading day; row 0: its own day)
    liquidity: np.ndarray

    def day(self, d: dt.date) -> int:
        try:
            return self.dates.index(d)
        except ValueError:
            raise InvalidInput(f"{d} is not a trading day of the stock panel") from None


@dataclass(frozen=True)
class IndexSeries:
    code: str
    dates: tuple[dt.date, ...]
    close: np.ndarray  # points

    def returns(self, start: dt.date, end: dt.date) -> tuple[tuple[dt.date, ...], np.ndarray]:
        """Daily close-to-close returns of the trading days in [start, end]."""
        sel = [i for i, d in enumerate(self.dates) if start <= d <= end and i > 0]
        if not sel:
            raise InvalidInput(f"{self.code} has no data between {start} and {end}")
        i = np.array(sel)
        return tuple(self.dates[j] for j in sel), self.close[i] / self.close[i - 1] - 1.0


@functools.lru_cache(maxsize=2)
def load_panel(path: Path = STOCK_FILE) -> Panel:
    bars = [b for b in read_bars(path) if not b.is_index]
    codes = tuple(sorted({b.code for b in bars}))
    dates = tuple(sorted({b.date for b in bars}))
    ci = {c: i for i, c in enumerate(codes)}
    di = {d: i for i, d in enumerate(dates)}
    shape = (len(dates), len(codes))
    close = np.full(shape, np.nan)
    prev = np.full(shape, np.nan)
    amount = np.zeros(shape)
    traded = np.zeros(shape, dtype=np.int64)  # fen, as risk/regime.py `traded_amount` counts
    flags = {k: np.zeros(shape, dtype=bool) for k in ("sd", "ld", "h", "p")}
    for b in bars:
        d, s = di[b.date], ci[b.code]
        close[d, s], prev[d, s], amount[d, s] = b.close, b.prev_close, b.amount
        traded[d, s] = traded_amount(b)
        flags["sd"][d, s], flags["ld"][d, s] = b.sealed_down, b.locked_down
        flags["h"][d, s], flags["p"][d, s] = b.halted, True
    avg = rolling_amounts(traded)
    liquidity = np.concatenate([avg[:1], avg[:-1]])  # published at the previous close
    return Panel(
        codes,
        dates,
        close,
        prev,
        flags["sd"],
        flags["ld"],
        flags["h"],
        flags["p"],
        amount,
        liquidity,
    )


def rolling_amounts(traded: np.ndarray, n: int = ADV_DAYS) -> np.ndarray:
    """(D, S) int64 fen: each stock's mean daily traded amount over the last `n` trading days
    up to each day (inclusive; fewer at the start), rounded down, a halted or missing day
    counting 0 — `risk/regime.py` `average_amounts` for every day at once."""
    csum = np.cumsum(np.asarray(traded, dtype=np.int64), axis=0)
    prior = np.zeros_like(csum)
    prior[n:] = csum[:-n]
    count = np.minimum(np.arange(1, csum.shape[0] + 1), n).astype(np.int64)[:, None]
    out: np.ndarray = (csum - prior) // count
    return out


@functools.lru_cache(maxsize=4)
def load_index(name: str = "csi300") -> IndexSeries:
    if name not in INDEX_FILES:
        raise InvalidInput(f"unknown index {name!r}; one of {', '.join(INDEX_FILES)}")
    path = INDEX_FILES[name]
    bars = convert_netease(path)[0] if name == "csi300" else read_bars(path)
    bars = sorted(bars, key=lambda b: b.date)
    return IndexSeries(
        bars[0].code,
        tuple(b.date for b in bars),
        np.array([b.close for b in bars], dtype=float) / 100.0,
    )


@dataclass(frozen=True)
class FactorModel:
    """One-factor model of the shipped stocks on the CSI 300 (see the module docstring)."""

    codes: tuple[str, ...]
    alpha: np.ndarray  # (S,) daily
    beta: np.ndarray
    idio_vol: np.ndarray  # daily
    adv_yuan: np.ndarray  # average daily amount
    boards: tuple[Board, ...]
    resid_df: float  # Student-t degrees of freedom of the residuals
    magnet_bps: int  # a latent move within this of limit-down ends sealed
    halt_enter: float  # P(halt tomorrow | trading today)
    halt_enter_sealed: float  # the same after a day sealed at limit-down
    halt_stay: float  # P(still halted tomorrow | halted today)
    factor_vol: float  # daily vol of the CSI 300 over the fitting window
    # a day's traded shares relative to the stock's average trading day, when it closed
    # sealed at limit-down (not locked) and when locked there all day (一字跌停): the
    # model market's daily amounts (its rolling 20-day liquidity figure)
    sealed_volume_share: float = 1.0
    locked_volume_share: float = 1.0

    def limit_bps(self, day: dt.date) -> np.ndarray:
        return np.array(
            [limit_bps(Security.parse(c), day) or 10_000 for c in self.codes], dtype=float
        )


def _sealed_expected(
    m: float, mu: np.ndarray, vol: np.ndarray, limit: np.ndarray, df: float
) -> float:
    z = (np.log1p(-limit) + m - mu) / vol
    return float(stats.t.cdf(z * np.sqrt(df / (df - 2)), df).sum())


@functools.lru_cache(maxsize=1)
def fit_factor_model() -> FactorModel:
    panel = load_panel()
    idx = load_index("csi300")
    pos = {d: i for i, d in enumerate(idx.dates)}
    rm = np.array([idx.close[pos[d]] / idx.close[pos[d] - 1] - 1 for d in panel.dates])
    trade = panel.present & ~panel.halted
    r = np.where(trade, panel.close / panel.prev_close - 1, np.nan)
    lr, lm = np.log1p(r), np.log1p(rm)
    S = len(panel.codes)
    alpha, beta, vol = np.zeros(S), np.ones(S), np.full(S, 0.03)
    resid: list[np.ndarray] = []
    for s in range(S):
        ok = ~np.isnan(lr[:, s])
        if ok.sum() < 20:
            continue
        b, a = np.polyfit(lm[ok], lr[ok, s], 1)
        e = lr[ok, s] - (a + b * lm[ok])
        alpha[s], beta[s], vol[s] = a, b, e.std(ddof=2)
        resid.append(e / vol[s])
    pooled = np.concatenate(resid)
    kurt = float(stats.kurtosis(pooled))
    df = 4.0 + 6.0 / kurt if kurt > 0.2 else 30.0
    # the seal magnet: expected sealed count summed over all days = observed
    limit = np.array([limit_bps(Security.parse(c), panel.dates[0]) or 0 for c in panel.codes])
    limit = limit / 10_000.0
    observed = float(panel.sealed_down[trade].sum())
    days = [np.nonzero(trade[d])[0] for d in range(len(panel.dates))]

    def gap(m: float) -> float:
        total = 0.0
        for d, ss in enumerate(days):
            mu = alpha[ss] + beta[ss] * lm[d]
            total += _sealed_expected(m, mu, vol[ss], limit[ss], df)
        return total - observed

    magnet = optimize.brentq(gap, 0.0, 0.05) if gap(0.0) < 0 < gap(0.05) else 0.0
    # suspension chain
    h = panel.halted & panel.present
    prev_t, prev_h = trade[:-1], h[:-1]
    nxt_h = h[1:] & panel.present[1:]
    enter = nxt_h[prev_t].mean()
    sealed_prev = panel.sealed_down[:-1] & prev_t
    enter_sealed = nxt_h[sealed_prev].mean() if sealed_prev.any() else enter
    stay = nxt_h[prev_h].mean() if prev_h.any() else 0.0
    amount = np.where(trade, panel.amount, np.nan) / 100.0
    adv = np.nan_to_num(np.nanmean(amount, axis=0), nan=1e7)
    # shares traded on sealed / locked days against the stock's average trading day
    shares = np.where(trade, panel.amount / panel.close, np.nan)
    rel = shares / np.nanmean(shares, axis=0)
    sealed_only = panel.sealed_down & ~panel.locked_down & trade
    locked = panel.locked_down & trade
    sealed_share = float(np.nanmean(rel[sealed_only])) if sealed_only.any() else 1.0
    locked_share = float(np.nanmean(rel[locked])) if locked.any() else sealed_share
    model = FactorModel(
        codes=panel.codes,
        alpha=alpha * 0.0,  # no drift in stress paths: the sample's drift is not a forecast
        beta=beta,
        idio_vol=vol,
        adv_yuan=np.maximum(adv, 1e6),
        boards=tuple(Security.parse(c).board for c in panel.codes),
        resid_df=df,
        magnet_bps=round(magnet * 10_000),
        halt_enter=float(enter),
        halt_enter_sealed=float(max(enter_sealed, enter)),
        halt_stay=float(stay),
        factor_vol=float(np.std(lm)),
        sealed_volume_share=sealed_share,
        locked_volume_share=locked_share,
    )
    log.info(
        "factor model fitted",
        extra={"stocks": S, "beta_median": float(np.median(beta)), "magnet_bps": magnet * 1e4},
    )
    return model


@dataclass(frozen=True)
class Garch:
    """GARCH(1,1)-t of the CSI 300's daily log returns (in fractions, not percent)."""

    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float
    start_var: float  # the sample variance of the fitting window: where paths start

    @property
    def uncond_var(self) -> float:
        return self.omega / max(1e-9, 1.0 - self.alpha - self.beta)


@functools.lru_cache(maxsize=1)
def fit_garch(start: dt.date = dt.date(2005, 1, 4), end: dt.date = dt.date(2020, 10, 16)) -> Garch:
    from arch import arch_model

    idx = load_index("csi300")
    _, r = idx.returns(start, end)
    res = arch_model(100 * np.log1p(r), mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(
        disp="off"
    )
    p = res.params
    return Garch(
        mu=0.0,  # no drift in stress paths
        omega=float(p["omega"]) / 1e4,
        alpha=float(p["alpha[1]"]),
        beta=float(p["beta[1]"]),
        nu=float(p["nu"]),
        start_var=float(np.var(np.log1p(r))),
    )
