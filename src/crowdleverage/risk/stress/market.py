"""Simulated A-share markets for stress runs, vectorised over paths (rows) and securities.

Every market keeps, per path and security, the traded close `X` (1.0 at the start), the day's
previous close, and flags: halted (停牌), sealed at limit-down (封跌停: nothing the platform
sells gets filled at the close). Liquidation sales move prices through `impact`.

`ModelMarket` is driven by factor returns (a historical index path or GARCH-t paths): each
stock's *latent* log price moves by β·f + σ·ε (ε Student-t); its traded price follows within
the day's band (by board, on the scenario's date), so a latent fall deeper than the band
leaves a gap that the next days close at limit-down again: seals and locked days cluster. A
latent move within the fitted *magnet* of limit-down ends sealed. Halts follow a Markov chain
(more likely after a sealed day); a halted stock keeps its price while its latent price moves.

`PanelMarket` replays the shipped real stocks (prices, seals and halts as they happened);
liquidation sales there only lower the platform's own fill prices.

**Liquidity** (`adv`): what the platform publishes before each day's session, each stock's
average traded amount over the last 20 trading days up to the previous close (a halted day
counts 0; `risk/regime.py` `average_amounts`). It sets the liquidity cap of the opening book,
the day's sale capacity and the impact's scale. `PanelMarket` takes the real figure of each
day (`Panel.liquidity`). `ModelMarket` starts from 20 ordinary days at the stock's average
amount in the shipped window and rolls in each simulated day's amount: the average day's
shares at the day's close (× the closing price relative to the start), none while halted,
the fitted share on a day sealed at limit-down and on a day locked there
(`FactorModel.sealed_volume_share`, `locked_volume_share`: 95% and 11% on the shipped data),
so the figure falls through a crash as the platform's would. The platform's own sales are
not added to the amounts.
"""

from __future__ import annotations

import numpy as np

from crowdleverage.domain.params import LIQUIDITY_ADV_DAYS
from crowdleverage.risk.stress.data import FactorModel, Panel

IMPACT_ETA = 1.0  # square-root law: impact = η · σ_daily · sqrt(sold / ADV)
PERMANENT_SHARE = 0.5  # the part of the impact that stays in the price


class Market:
    P: int
    S: int
    X: np.ndarray
    prev: np.ndarray
    limit: np.ndarray  # (P, S) fraction, e.g. 0.10
    halted: np.ndarray
    sealed: np.ndarray
    locked: np.ndarray
    vol: np.ndarray  # (P, S) daily vol, for impact
    adv: np.ndarray  # (P, S) 20-day average daily amount published at the last close, yuan
    index_level: np.ndarray  # (P,)

    def step(self, t: int) -> None:
        raise NotImplementedError

    def impact(self, sold_yuan: np.ndarray, scale_yuan: np.ndarray) -> np.ndarray:
        """Apply the price impact of `sold_yuan` (P, S) and return the fill-price factor.

        `scale_yuan` converts the book's normalised values into yuan (one per path)."""
        frac = sold_yuan * scale_yuan[:, None] / np.maximum(self.adv, 1.0)
        imp = IMPACT_ETA * self.vol * np.sqrt(np.maximum(frac, 0.0))
        floor = self.prev * (1.0 - self.limit) / self.X
        fill = np.maximum(1.0 - imp, np.minimum(floor, 1.0))
        perm = np.maximum(1.0 - PERMANENT_SHARE * imp, np.minimum(floor, 1.0))
        hit = (perm <= floor + 1e-12) & (imp > 0)
        self._apply_permanent(perm)
        self.sealed |= hit
        return fill

    def _apply_permanent(self, factor: np.ndarray) -> None:
        self.X = self.X * factor


class ModelMarket(Market):
    def __init__(
        self,
        model: FactorModel,
        pick: np.ndarray,  # (P, S) indices into the model's stocks
        factor: np.ndarray,  # (P, T) factor log returns
        vol_scale: np.ndarray,  # (P, T) idiosyncratic vol multiplier (GARCH clustering)
        limit_bps: np.ndarray,  # (S_model,) the band on the scenario's dates
        rng: np.random.Generator,
    ) -> None:
        self.model, self.factor, self.vol_scale, self.rng = model, factor, vol_scale, rng
        self.P, self.S = pick.shape
        self.beta = model.beta[pick]
        self.vol = model.idio_vol[pick]
        # the 20-day window of daily amounts (yuan), oldest first: 20 ordinary days to start
        self._day_amount = model.adv_yuan[pick]
        self._window = np.repeat(self._day_amount[None], LIQUIDITY_ADV_DAYS, axis=0)
        self._stepped = False
        self.adv = self._window.mean(0)
        self.limit = limit_bps[pick] / 10_000.0
        self.log_down = np.log1p(-self.limit)
        self.log_up = np.log1p(self.limit)
        self.magnet = model.magnet_bps / 10_000.0
        self.X = np.ones((self.P, self.S))
        self.prev = self.X.copy()
        self.gap = np.zeros((self.P, self.S))  # latent − traded, log
        # halts start from the chain's stationary share
        stationary = model.halt_enter / max(1e-9, 1.0 - model.halt_stay + model.halt_enter)
        self.halted = rng.random((self.P, self.S)) < stationary
        self.sealed = np.zeros_like(self.halted)
        self.locked = np.zeros_like(self.halted)
        self.index_level = np.ones(self.P)
        df = model.resid_df
        self._t_scale = np.sqrt((df - 2.0) / df)

    def _publish_liquidity(self) -> None:
        """Roll the last day's traded amount (at its close, after the platform's sales) into
        the 20-day window and publish the new average."""
        m = self.model
        share = np.where(self.locked, m.locked_volume_share,
                         np.where(self.sealed, m.sealed_volume_share, 1.0))  # fmt: skip
        today = np.where(self.halted, 0.0, self._day_amount * self.X * share)
        self._window = np.concatenate([self._window[1:], today[None]])
        self.adv = self._window.mean(0)

    def step(self, t: int) -> None:
        if self._stepped:
            self._publish_liquidity()
        self._stepped = True
        m, rng = self.model, self.rng
        f = self.factor[:, t]
        eps = rng.standard_t(m.resid_df, size=(self.P, self.S)) * self._t_scale
        latent = self.beta * f[:, None] + self.vol * self.vol_scale[:, t, None] * eps
        was_sealed = self.sealed
        u = rng.random((self.P, self.S))
        enter = np.where(was_sealed, m.halt_enter_sealed, m.halt_enter)
        self.halted = np.where(self.halted, u < m.halt_stay, u < enter)
        self.prev = self.X
        self.gap = self.gap + latent
        move = np.clip(self.gap, self.log_down, self.log_up)
        down = self.gap <= self.log_down + self.magnet
        move = np.where(down, self.log_down, move)
        move = np.where(self.halted, 0.0, move)
        self.sealed = down & ~self.halted
        self.locked = self.sealed & (self.gap - self.log_down <= self.log_down / 2)
        self.gap = self.gap - move
        self.X = self.prev * np.exp(move)
        self.index_level = self.index_level * np.exp(f)


class PanelMarket(Market):
    """The real stocks of the shipped panel from day `d0` for `T` days."""

    def __init__(self, panel: Panel, pick: np.ndarray, d0: int, model: FactorModel) -> None:
        self.P, self.S = pick.shape
        sl = slice(d0, None)
        self._close = panel.close[sl][:, pick]  # (T, P, S)
        self._prev = panel.prev_close[sl][:, pick]
        self._sealed = panel.sealed_down[sl][:, pick]
        self._locked = panel.locked_down[sl][:, pick]
        self._halted = panel.halted[sl][:, pick] | ~panel.present[sl][:, pick]
        base = self._prev[0]
        self._close = self._close / base
        self._prev = self._prev / base
        self.vol = model.idio_vol[pick]
        self._liquidity = panel.liquidity[sl][:, pick] / 100.0  # (T, P, S) yuan
        self.adv = self._liquidity[0]
        self.limit = np.full((self.P, self.S), 0.10)
        self.X = np.ones((self.P, self.S))
        self.prev = self.X.copy()
        self.halted = np.zeros((self.P, self.S), dtype=bool)
        self.sealed = np.zeros_like(self.halted)
        self.locked = np.zeros_like(self.halted)
        self.index_level = np.ones(self.P)

    def step(self, t: int) -> None:
        self.adv = self._liquidity[t]
        close = self._close[t]
        self.halted = self._halted[t] | np.isnan(close)
        self.prev = self.X
        self.X = np.where(self.halted, self.X, np.nan_to_num(close, nan=1.0))
        self.sealed = self._sealed[t] & ~self.halted
        self.locked = self._locked[t] & ~self.halted
        ew = np.nanmean(np.where(self.halted, np.nan, self.X / self.prev), axis=1)
        self.index_level = self.index_level * np.nan_to_num(ew, nan=1.0)

    def _apply_permanent(self, factor: np.ndarray) -> None:
        return None  # the history is given: sales only lower the platform's fills
