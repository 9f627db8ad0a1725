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
"""

from __future__ import annotations

import numpy as np

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
    adv: np.ndarray  # (P, S) average daily amount, yuan
    index_level: np.ndarray  # (P,)

    def step(self, t: int) -> None:
        raise NotImplementedError

    def impact(self, sold_yuan: np.ndarray, scale_yuan: np.ndarray) -> np.ndarray:
        """Apply the price impact of `sold_yuan` (P, S) and return the fill-price factor.

        `scale_yuan` converts the book's normalised values into yuan (one per path)."""
        frac = sold_yuan * scale_yuan[:, None] / self.adv
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
        self.adv = model.adv_yuan[pick]
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

    def step(self, t: int) -> None:
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
        self.adv = model.adv_yuan[pick]
        self.limit = np.full((self.P, self.S), 0.10)
        self.X = np.ones((self.P, self.S))
        self.prev = self.X.copy()
        self.halted = np.zeros((self.P, self.S), dtype=bool)
        self.sealed = np.zeros_like(self.halted)
        self.locked = np.zeros_like(self.halted)
        self.index_level = np.ones(self.P)

    def step(self, t: int) -> None:
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
