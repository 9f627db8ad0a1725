"""The platform's margin policy on a simulated market, vectorised over paths × accounts.

Each account holds K positions (indices into its path's universe of S securities). Every day:
interest accrues; the day runs under the regime published at the last close (risk/regime.py's
indicator: share of trading stocks sealed at limit-down, share halted, index drawdown, with
hysteresis), raising the lines as the Liquidator does; below the warning line a reserve tops
up back to the target ratio; below the liquidation line the account is liquidated — partially
back to a target ratio, or in full while the market is stressed (`full_close`) — selling only
sellable positions (not halted, not sealed at limit-down), within a daily capacity per
security (a share of its average volume), at a price lowered by the platform's own sales
(square-root impact). Sales move prices, which can push further accounts below the line: the
day repeats in rounds (cascade), each later round only on the paths where something sold.
An account with debt left and nothing left to sell defaults: its reserve pays first, the rest
is a deficit. At the horizon, open positions are valued conservatively (a sealed stock one
more limit-down lower, a halted one at the halted haircut) and any shortfall is a deficit.

Losses then go down the waterfall (DESIGN §6): borrower margin → borrower reserve →
liquidation penalties → insurance fund → junior tranche → senior tranche.

Floats throughout: this is analytics, not accounting (the chain re-checks before acting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crowdleverage.domain.params import BPS, MAX_SINGLE_SECURITY_BPS
from crowdleverage.domain.security import Board
from crowdleverage.risk.stress.market import Market
from crowdleverage.risk.stress.policy import Book, MarginPolicy

TRADING_DAYS = 252
MAX_ROUNDS = 4  # cascade rounds per day
CAPACITY_SHARE = 0.10  # the platform sells at most 10% of a stock's 20-day average amount a day
MAX_SINGLE_SHARE = MAX_SINGLE_SECURITY_BPS / BPS  # one security ≤ 40% of an account's book
LAYERS = ("borrower_margin", "borrower_reserve", "penalty", "insurance", "junior", "senior")


@dataclass(frozen=True)
class PolicyArrays:
    """The policy as arrays indexed by tier (index 0 unused)."""

    leverage: np.ndarray
    initial: np.ndarray
    warning: np.ndarray
    liquidation: np.ndarray
    apr: np.ndarray
    board_haircut: dict[Board, float]
    halted_haircut: float
    penalty: float
    premium: float
    stress_line_share: float
    stress_line_add: float
    stress_haircut_mult: float
    stress_target_add: float
    stress_full_close: bool
    always_full_close: bool
    use_reserve: bool
    # the regime indicator (risk/regime.py RegimeParams), shares as fractions
    enter_ld: float
    enter_halted: float
    enter_dd: float
    exit_ld: float
    exit_halted: float
    exit_dd: float
    dd_days: int
    calm_closes: int
    intraday_enter: bool = False  # STRESSED from the day's first stressed observation
    # the horizon's mark of a halted security (both sides of a comparison value it alike)
    end_halted_mark: float = 0.5
    # NAV stop (Liquidator.nav_stop_bps): closed in full once equity < opening equity − this
    # share of opening assets (the reference the keeper records when the debt is drawn)
    nav_stop: float = 0.0
    nav_stop_below: float = 3.0  # the stop applies below this ratio
    # liquidity cap (RiskParams.liquidity_cap_bps): the platform's position in a security
    # ≤ this share of its average daily amount after a financed buy (0: not modelled)
    liquidity_cap: float = 0.0
    # the stressed lines and haircuts phase in over this many stressed days (0: at once); the
    # switch day runs on the calm lines and haircuts (the stressed mode and target apply)
    stress_phase_in: int = 0
    # the NAV-stop reference follows a haircut step (the keeper's `across_haircut_step`,
    # `Liquidator.shift_references`): the reference equity moves by what the step changed of
    # the account's value at the last close, so the stop counts market losses only
    stop_follows_haircuts: bool = True

    @classmethod
    def of(cls, p: MarginPolicy, *, umbrella: bool = False) -> PolicyArrays:
        def col(name: str) -> np.ndarray:
            return np.array([0.0] + [getattr(p.tiers[t], name) for t in (1, 2, 3)], dtype=float)

        lev = col("max_leverage")
        if umbrella:
            # an umbrella trust at the same leverage: stop (close all) at NAV 0.90 of the start,
            # market value without haircuts, no reserve, nothing sold while sealed or halted
            stop = 0.9 * (lev + 1) / np.where(lev > 0, lev, 1)
            return cls(
                leverage=lev, initial=(lev + 1) / np.where(lev > 0, lev, 1), warning=stop,
                liquidation=stop, apr=col("rate_apr_bps") / BPS,
                board_haircut={b: 1.0 for b in Board}, halted_haircut=1.0, penalty=0.0,
                premium=0.0, stress_line_share=0.0, stress_line_add=0.0,
                stress_haircut_mult=1.0, stress_target_add=0.0, stress_full_close=True,
                always_full_close=True, use_reserve=False, enter_ld=2.0, enter_halted=2.0,
                enter_dd=2.0, exit_ld=2.0, exit_halted=2.0, exit_dd=2.0, dd_days=1,
                calm_closes=1, end_halted_mark=p.halted_haircut_bps / BPS,
            )  # fmt: skip
        s, r = p.stressed, p.regime
        return cls(
            leverage=lev,
            initial=col("initial_ratio_bps") / BPS,
            warning=col("warning_ratio_bps") / BPS,
            liquidation=col("liquidation_ratio_bps") / BPS,
            apr=col("rate_apr_bps") / BPS,
            board_haircut={b: v / BPS for b, v in p.haircut_bps.items()},
            halted_haircut=p.halted_haircut_bps / BPS,
            penalty=p.liquidation_penalty_bps / BPS,
            premium=p.insurance_premium_bps / BPS,
            stress_line_share=s.line_share_bps / BPS,
            stress_line_add=s.line_add_bps / BPS,
            stress_haircut_mult=s.haircut_mult_bps / BPS,
            stress_target_add=s.target_add_bps / BPS,
            stress_full_close=s.full_close,
            always_full_close=p.liquidation_full_close,
            use_reserve=True,
            enter_ld=r.enter_limit_down_bps / BPS,
            enter_halted=r.enter_halted_bps / BPS,
            enter_dd=r.enter_drawdown_bps / BPS,
            exit_ld=r.exit_limit_down_bps / BPS,
            exit_halted=r.exit_halted_bps / BPS,
            exit_dd=r.exit_drawdown_bps / BPS,
            dd_days=r.drawdown_days,
            calm_closes=r.calm_closes,
            intraday_enter=r.intraday_enter,
            end_halted_mark=p.halted_haircut_bps / BPS,
            nav_stop=p.nav_stop_bps / BPS,
            nav_stop_below=p.nav_stop_below_bps / BPS,
            stress_phase_in=s.phase_in_days,
            liquidity_cap=p.liquidity_cap_bps / BPS,
        )

    def phase(self, run: np.ndarray) -> np.ndarray:
        """The share (0..1) of the stressed lines and haircuts in force on the `run`-th
        consecutive stressed day (0: calm): all of it at once without a phase-in, else 0 on
        the switch day and 1/N more on each stressed day after it."""
        if self.stress_phase_in <= 0:
            return (run > 0).astype(float)
        return np.clip((run - 1) / self.stress_phase_in, 0.0, 1.0) * (run > 0)

    def lines(
        self, tier: np.ndarray, stressed: np.ndarray, w: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """(warning, liquidation, target) per path × account: the Liquidator's lines, raised
        while the path's regime (published at the last close) is stressed — by the share `w`
        (per path, default all of it) of the stressed rise while it phases in."""
        s = stressed[:, None]
        wf = s.astype(float) if w is None else w[:, None] * s
        init, liq = self.initial[tier][None], self.liquidation[tier][None]
        up = wf * (self.stress_line_share * (init - liq) + self.stress_line_add)
        liq_line = liq + up
        warn_line = np.where(s, np.maximum(self.warning[tier][None]
                                           + wf * self.stress_line_add, liq_line),
                             self.warning[tier][None])  # fmt: skip
        return warn_line, liq_line, init + np.where(s, self.stress_target_add, 0.0)


@dataclass(frozen=True)
class BookArrays:
    """One book: K positions per account into a universe of S securities (shared by paths)."""

    tier: np.ndarray  # (A,) 1..3
    idx: np.ndarray  # (A, K)
    weight: np.ndarray  # (A, K), rows sum to 1, each ≤ 0.4
    margin_w: np.ndarray  # (A,) relative margin size (scaled per path to the utilisation)
    reserve_frac: np.ndarray  # (A,) reserve / margin
    n_securities: int


def make_book(book: Book, n_securities: int, rng: np.random.Generator) -> BookArrays:
    A, K = book.accounts, min(book.positions_per_account, n_securities)
    mix = np.array(book.tier_mix_bps, dtype=float) / BPS
    tier = rng.choice(np.array([1, 2, 3]), size=A, p=mix)
    pop = 1.0 / np.arange(1, n_securities + 1) ** 0.5
    pop /= pop.sum()
    idx = np.stack([rng.choice(n_securities, size=K, replace=False, p=pop) for _ in range(A)])
    w = rng.dirichlet(np.full(K, 4.0), size=A)
    cap = max(0.4, 1.0 / K)
    for _ in range(8):  # water-fill the 40% concentration limit
        w = np.minimum(w, cap)
        w = w / w.sum(axis=1, keepdims=True)
    margin_w = rng.lognormal(0.0, 0.8, size=A)
    has_res = rng.random(A) < book.reserve_share_bps / BPS
    reserve_frac = np.where(has_res, book.reserve_bps_of_margin / BPS, 0.0)
    return BookArrays(tier, idx, w, margin_w, reserve_frac, n_securities)


@dataclass
class ChunkResult:
    """Per path: yuan absorbed by each layer; capital of each layer; tier loss shares and a
    histogram (0.1% bins) of account loss % per tier; counters."""

    layer_loss: dict[str, np.ndarray]  # (P,) yuan
    layer_capital: dict[str, np.ndarray]  # (P,) yuan
    tier_loss: np.ndarray  # (P, 4): Σ loss / Σ deposits per tier
    tier_hist: np.ndarray  # (4, 1001) counts of account loss % (0.1% steps)
    deficit: np.ndarray  # (P,)
    insurance_exhausted: np.ndarray  # (P,) bool
    liquidations: np.ndarray  # (P,) accounts that entered liquidation
    stressed_days: np.ndarray  # (P,)
    sealed_share: np.ndarray  # (P, T) share of the universe sealed at limit-down
    # strategy books (risk/stress/strategy.py), when the run has them: yuan per path for
    # "loss", "strategy_margin", "strategy_reserve" and their part of each shared layer
    strategy: dict[str, np.ndarray] | None = None
    # accounts entering liquidation on the first day of a stressed spell, and those the
    # stressed parameters alone put there (above the calm lines and stop at calm haircuts)
    switch_liquidations: np.ndarray | None = None  # (P,)
    regime_liquidations: np.ndarray | None = None  # (P,)
    # what the opened book lends / the book's loans (below 1 where the liquidity cap cut it)
    lent_share: np.ndarray | None = None  # (P,)


def _haircuts(mkt: Market, boards: np.ndarray, pol: PolicyArrays, w: np.ndarray):
    """Each security's haircut per path; `w` (per path, bool or 0..1) is the share of the
    stressed scale in force."""
    w = np.asarray(w, dtype=float)
    mult = np.where(w >= 1.0, pol.stress_haircut_mult, 1.0 - w * (1.0 - pol.stress_haircut_mult))
    h = boards * mult[:, None]
    return np.where(mkt.halted, np.minimum(pol.halted_haircut, h), h)


@dataclass
class RegimeState:
    """risk/regime.py's indicator per path: the state, the run of calm closes, the last
    `dd_days` index closes (for the drawdown)."""

    stressed: np.ndarray  # (P,) bool
    calm_run: np.ndarray  # (P,) int
    levels: np.ndarray  # (P, dd_days)

    @classmethod
    def start(cls, P: int, pol: PolicyArrays) -> RegimeState:
        return cls(np.zeros(P, dtype=bool), np.zeros(P, dtype=np.int64),
                   np.ones((P, max(pol.dd_days, 1))))  # fmt: skip


def _enter_and_calm(
    state: RegimeState, mkt: Market, pol: PolicyArrays
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(enter, calm, levels) per path on today's market: whether a measure reaches its enter
    threshold, whether every one is below its exit threshold, and the closes window."""
    n = mkt.halted.shape[1]
    halted = mkt.halted.sum(1)
    trading = n - halted
    ld = (mkt.sealed & ~mkt.halted).sum(1)
    levels = np.concatenate([state.levels[:, 1:], mkt.index_level[:, None]], axis=1)
    dd = 1.0 - levels[:, -1] / levels.max(1)

    def at_least(count: np.ndarray, of: np.ndarray | int, share: float) -> np.ndarray:
        # count / of ≥ share, without a division (no trading stock: 100% at limit-down)
        return count >= share * of - 1e-9

    enter = (
        at_least(ld, trading, pol.enter_ld) | at_least(halted, n, pol.enter_halted)
        | (dd >= pol.enter_dd)
    )  # fmt: skip
    calm = ~at_least(ld, trading, pol.exit_ld) & ~at_least(halted, n, pol.exit_halted) & (
        dd < pol.exit_dd
    ) & (trading > 0)  # fmt: skip
    return enter, calm, levels


def regime_today(state: RegimeState, mkt: Market, pol: PolicyArrays) -> np.ndarray:
    """The regime a day runs under, per path: the one published at the last close, or
    STRESSED from the day's first stressed observation when the policy enters intraday
    (`RegimeParams.intraday_enter`; a daily model sees the day's close as that
    observation — an intraday crossing that recovers by the close is missed)."""
    if not pol.intraday_enter:
        return state.stressed
    enter, _, _ = _enter_and_calm(state, mkt, pol)
    return state.stressed | enter


def regime_step(state: RegimeState, mkt: Market, pol: PolicyArrays) -> RegimeState:
    """One close of risk/regime.py's `RegimeTracker`, per path: STRESSED as soon as the share
    of trading stocks sealed at limit-down, the share halted or the index drawdown over the
    last `dd_days` closes reaches its enter threshold; CALM again after `calm_closes`
    consecutive closes below every exit threshold."""
    enter, calm, levels = _enter_and_calm(state, mkt, pol)
    run = np.where(enter | ~state.stressed, 0, np.where(calm, state.calm_run + 1, 0))
    back = state.stressed & ~enter & (run >= pol.calm_closes)
    stressed = enter | (state.stressed & ~back)
    return RegimeState(stressed, np.where(back, 0, run), levels)


def _dot(q: np.ndarray, price: np.ndarray, idx_k: list[np.ndarray]) -> np.ndarray:
    """Σ_k q[k] · price[:, idx[:, k]] → (P, A); q is laid out (K, P, A)."""
    out = q[0] * price.take(idx_k[0], axis=1)
    for k in range(1, len(idx_k)):
        out += q[k] * price.take(idx_k[k], axis=1)
    return out


def open_book(
    book: BookArrays,
    pol: PolicyArrays,
    boards: np.ndarray,
    loans_yuan: float,
    adv: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every account at its tier's initial ratio on haircut value (at most its leverage), the
    debts adding up to the loans on every path. Returns (yuan per book unit (P,), margin,
    debt, reserve (P, A), quantities (K, P, A)); prices start at 1.

    With a liquidity cap (`pol.liquidity_cap`) and each security's 20-day average amount
    published before the session (`adv`, (P, S) yuan, `Market.adv`), the book respects the
    chain's cap on financed buys: where the platform's position in a security would exceed the
    cap, every account's financed part of it is cut pro rata (the buys above the cap revert
    "margin: above liquidity cap"; what the margin bought stays), so such a path lends
    less than `loans_yuan` (`lent_share`)."""
    P = boards.shape[0]
    lev, init = pol.leverage[book.tier], pol.initial[book.tier]
    hbar = (book.weight[None] * boards[:, book.idx]).sum(-1)  # (P, A)
    debt_per_margin = np.minimum(hbar / np.maximum(init[None] - hbar, 1e-9), lev[None])
    scale = loans_yuan / (debt_per_margin * book.margin_w[None]).sum(1)
    M = book.margin_w[None] * np.ones((P, 1))
    D = debt_per_margin * M
    R = book.reserve_frac[None] * M if pol.use_reserve else np.zeros_like(M)
    q = np.ascontiguousarray(np.moveaxis(book.weight[None] * (M + D)[..., None], -1, 0))
    if pol.liquidity_cap > 0 and adv is not None:
        cap_by_liquidity(q, D, book.idx, scale, pol.liquidity_cap * adv)
    return scale, M, D, R, q


def cap_by_liquidity(
    q: np.ndarray,
    D: np.ndarray,
    idx: np.ndarray,
    scale: np.ndarray,
    cap_yuan: np.ndarray,
    rounds: int = 6,
) -> np.ndarray:
    """Fit the opening book (in place) to the liquidity cap: per path and security, the
    platform's position (Σ accounts, yuan at price 1) ≤ `cap_yuan` (P, S). A buy that would
    take a security over its cap is refused, so each account's position in it is cut by the
    same share and the borrower buys its other securities instead (those not capped, up to
    40% of its book each), for `rounds` rounds; what still finds no room is financing not
    drawn (debt and shares fall together; a cut larger than the account's debt keeps the rest,
    bought with its margin). Returns the share of the asked loans kept per path."""
    P = q.shape[1]
    S = cap_yuan.shape[1]
    flat = (np.arange(P)[:, None] * S + idx.T[:, None, :]).ravel()  # (K, P, A) → p·S + s
    at = (np.arange(P)[None, :, None], idx.T[:, None, :])
    d0 = D.sum(1)
    limit = MAX_SINGLE_SHARE * q.sum(0)[None]  # the 40% concentration limit, (1, P, A)

    def keep_share() -> np.ndarray:
        pos = np.bincount(flat, weights=(q * scale[None, :, None]).ravel(), minlength=P * S)
        pos = pos.reshape(P, S)
        return np.where(pos > cap_yuan, cap_yuan / np.where(pos > 0, pos, 1.0), 1.0)

    for _ in range(rounds):
        keep = keep_share()
        if (keep >= 1.0).all():
            break
        kk = keep[at]  # (K, P, A)
        cut = q * (1.0 - kk)
        q -= cut
        moved = cut.sum(0)
        room = np.where(kk >= 1.0, np.maximum(limit - q, 0.0), 0.0)
        room_sum = room.sum(0)
        put = np.minimum(moved, room_sum)
        q += room * (put / np.where(room_sum > 0, room_sum, 1.0))[None]
        lost = moved - put  # no room left in this account: financing not drawn
        paid = np.minimum(lost, D)
        D -= paid
        # a cut beyond the debt was bought with margin: it stays where it was
        back = lost - paid
        if (back > 0).any():
            q += cut * (back / np.where(moved > 0, moved, 1.0))[None]
    keep = keep_share()
    if not (keep >= 1.0).all():
        cut = q * (1.0 - keep[at])
        want = cut.sum(0)
        paid = np.minimum(want, D)
        q -= cut * np.where(want > 0, paid / np.where(want > 0, want, 1.0), 0.0)[None]
        D -= paid
    out: np.ndarray = D.sum(1) / np.where(d0 > 0, d0, 1.0)
    return out


def simulate(
    book: BookArrays,
    pol: PolicyArrays,
    mkt: Market,
    boards: np.ndarray,  # (P, S) board haircut of each path's securities (normal regime)
    horizon: int,
    loans_yuan: float,
    pool_yuan: float,
    junior_ratio: float,
    insurance_seed_yuan: float,
    strategy_losses: dict[str, np.ndarray] | None = None,
) -> ChunkResult:
    """`strategy_losses` (yuan per path, from StrategyStress.losses): the strategy books'
    deficit joins the retail deficit in the waterfall."""
    P, A = mkt.P, book.tier.size
    tier, idx = book.tier, book.idx
    idx_k = [np.ascontiguousarray(idx[:, k]) for k in range(idx.shape[1])]
    scale, M, D, R, q = open_book(book, pol, boards, loans_yuan, mkt.adv)
    lent = D.sum(1) * scale
    R0 = R.copy()
    C = np.zeros((P, A))
    # NAV stop: closed in full once C + V − D < stop_floor (the reference is the opening book)
    V0 = _dot(q, boards, idx_k)
    stop_floor0 = V0 - D - pol.nav_stop * V0 if pol.nav_stop > 0 else None
    # the live floor: moved by every haircut step (stop_follows_haircuts), the calm one kept
    stop_floor = None if stop_floor0 is None else stop_floor0.copy()
    w_prev = np.zeros(P)  # the share of the stressed set the last day ran on
    regime = RegimeState.start(P, pol)
    liq = np.zeros((P, A), dtype=bool)
    full = np.zeros((P, A), dtype=bool)
    ever_liq = np.zeros((P, A), dtype=bool)
    deficit = np.zeros((P, A))
    penalty = np.zeros(P)
    interest = np.zeros(P)
    stressed_days = np.zeros(P)
    sealed_share = np.zeros((P, horizon))

    calm_lines = pol.lines(tier, np.zeros(1, dtype=bool))  # (1, A) each
    stress_lines = pol.lines(tier, np.ones(1, dtype=bool))
    run = np.zeros(P, dtype=np.int64)  # consecutive days under the stressed regime
    # accounts that entered liquidation on a switch day (the first of a stressed spell), and
    # those the stressed parameters alone put there (above the calm lines and stop at the
    # calm haircuts): what a regime switch closes by itself
    switch_liq = np.zeros(P)
    regime_liq = np.zeros(P)
    live = np.zeros(0, dtype=np.intp)  # flat indices (p·A + a) in liquidation, sorted
    growth = 1.0 + pol.apr[tier] / TRADING_DAYS
    daily_a = pol.apr[tier] / TRADING_DAYS

    for t in range(horizon):
        X_close = mkt.X  # the last close (after its sales): where a haircut step is measured
        mkt.step(t)
        interest += D @ daily_a
        D *= growth[None]
        sealed_share[:, t] = mkt.sealed.mean(1)
        # published at the last close, or entered on today's first stressed observation
        stressed = regime_today(regime, mkt, pol)
        stressed_days += stressed
        run = np.where(stressed, run + 1, 0)
        w = pol.phase(run)
        h = _haircuts(mkt, boards, pol, w)
        if stop_floor is not None and pol.stop_follows_haircuts:
            stepped = np.flatnonzero(w != w_prev)
            if stepped.size:
                h_prev = _haircuts(mkt, boards, pol, w_prev)
                cut = X_close[stepped] * (h_prev[stepped] - h[stepped])
                stop_floor[stepped] -= _dot(q[:, stepped], cut, idx_k)
        w_prev = w
        if pol.stress_phase_in > 0 and stressed.any():
            warn_line, liq_line, target = pol.lines(tier, stressed, w)
        elif stressed.all():
            warn_line, liq_line, target = stress_lines
        elif stressed.any():
            warn_line, liq_line, target = (
                np.where(stressed[:, None], s, c)
                for s, c in zip(stress_lines, calm_lines, strict=True)
            )
        else:
            warn_line, liq_line, target = calm_lines
        hX = mkt.X * h
        V = _dot(q, hX, idx_k)
        CV = C + V
        # top-up from the reserve back to the target ratio (a top-up changes debt, not V)
        if pol.use_reserve:
            cand = np.flatnonzero(warn_line * D > CV)
            pp, aa = np.divmod(cand, A)
            ok = (R[pp, aa] > 0) & ~liq[pp, aa] & (D[pp, aa] > 1e-12)
            pp, aa = pp[ok], aa[ok]
            if pp.size:
                tg = np.broadcast_to(target, (P, A))[pp, aa]
                x = np.clip(np.minimum(D[pp, aa] - CV[pp, aa] / tg, R[pp, aa]), 0.0, None)
                D[pp, aa] -= x
                R[pp, aa] -= x
        cap_left = CAPACITY_SHARE * mkt.adv / scale[:, None]  # in book units
        rows: np.ndarray | None = None  # paths whose prices or books moved in the last round
        for _ in range(MAX_ROUNDS):
            if rows is None:
                below = liq_line * D > CV
                if stop_floor is not None:
                    below |= (stop_floor > CV - D) & (pol.nav_stop_below * D > CV)
                cand = np.flatnonzero(below)
                pp, aa = np.divmod(cand, A)
            else:  # only the paths that sold can have new accounts below the line
                Vr = _dot(q[:, rows], hX[rows], idx_k)
                V[rows] = Vr
                CVr = C[rows] + Vr
                CV[rows] = CVr
                lr = np.broadcast_to(liq_line, (P, A))[rows]
                below_r = CVr < lr * D[rows]
                if stop_floor is not None:
                    Dr = D[rows]
                    below_r |= (CVr - Dr < stop_floor[rows]) & (CVr < pol.nav_stop_below * Dr)
                rr, aa = np.nonzero(below_r)
                pp = rows[rr]
            ok = ~liq[pp, aa] & (D[pp, aa] > 1e-12)
            pp, aa = pp[ok], aa[ok]
            if pp.size:
                if stressed.any():
                    _count_regime_closes(
                        pp, aa, run, q, C, D, mkt, boards, pol, idx, calm_lines,
                        stop_floor0, switch_liq, regime_liq,
                    )  # fmt: skip
                liq[pp, aa] = True
                ever_liq[pp, aa] = True
                live = np.sort(np.concatenate([live, pp * A + aa]))
                if pol.always_full_close:
                    full[pp, aa] = True
                elif pol.stress_full_close:
                    full[pp, aa] |= stressed[pp]
                if stop_floor is not None:  # below the NAV stop: closed in full
                    cv, d = CV[pp, aa], D[pp, aa]
                    full[pp, aa] |= (cv - d < stop_floor[pp, aa]) & (cv < pol.nav_stop_below * d)
            if live.size == 0:
                break
            pp, aa = np.divmod(live, A)
            moved = _liquidation_round(
                pp, aa, q, C, D, full, target, V, mkt, h, idx, pol, cap_left, scale, penalty
            )
            if moved.size == 0:
                break
            hX[moved] = mkt.X[moved] * h[moved]
            rows = moved
            # the sellers' V changed too (fewer shares): refreshed with their paths
        if rows is not None:
            V[rows] = _dot(q[:, rows], hX[rows], idx_k)
            CV[rows] = C[rows] + V[rows]
        if live.size:
            # close the liquidations that are done
            pp, aa = np.divmod(live, A)
            tg = np.broadcast_to(target, (P, A))[pp, aa]
            Dl = D[pp, aa]
            has_debt = Dl > 1e-12
            done = ~has_debt | (~full[pp, aa] & (CV[pp, aa] >= tg * Dl))
            liq[pp[done], aa[done]] = False
            full[pp[done], aa[done]] = False
            pp, aa = pp[~done], aa[~done]
            # default: debt left, nothing left to sell (only an account in liquidation sells out)
            if pp.size:
                mv = (q[:, pp, aa].T * mkt.X[pp[:, None], idx[aa]]).sum(1)
                out = mv <= 1e-12
                pp, aa = pp[out], aa[out]
                use = np.minimum(R[pp, aa], D[pp, aa])
                R[pp, aa] -= use
                deficit[pp, aa] += D[pp, aa] - use
                D[pp, aa] = 0.0
                liq[pp, aa] = False
                full[pp, aa] = False
            live = live[liq.ravel()[live]]
        regime = regime_step(regime, mkt, pol)  # today's close

    # horizon: conservative value of what is left (open liquidations included)
    cons = np.where(mkt.sealed, mkt.X * (1.0 - mkt.limit), mkt.X)
    cons = np.where(mkt.halted, mkt.X * pol.end_halted_mark, cons)
    assets = C + R + _dot(q, cons, idx_k)
    deficit += np.maximum(D - assets, 0.0)
    equity = np.maximum(assets - D, 0.0)
    return _waterfall(
        book, M, R0, equity, deficit, penalty, interest, ever_liq, stressed_days, sealed_share,
        scale, pool_yuan, junior_ratio, insurance_seed_yuan, pol, strategy_losses,
        switch_liq, regime_liq, lent / loans_yuan if loans_yuan > 0 else None,
    )  # fmt: skip


def _count_regime_closes(
    pp: np.ndarray,
    aa: np.ndarray,
    run: np.ndarray,
    q: np.ndarray,
    C: np.ndarray,
    D: np.ndarray,
    mkt: Market,
    boards: np.ndarray,
    pol: PolicyArrays,
    idx: np.ndarray,
    calm_lines: tuple[np.ndarray, ...],
    stop_floor: np.ndarray | None,
    switch_liq: np.ndarray,
    regime_liq: np.ndarray,
) -> None:
    """Count, per path, the accounts (pp, aa) entering liquidation on a switch day and those
    that are not below the calm line or the NAV stop at the calm haircuts."""
    switch_liq += np.bincount(pp, weights=(run[pp] == 1), minlength=switch_liq.size)
    hc = _haircuts(mkt, boards, pol, np.zeros(mkt.P))
    cv = C[pp, aa] + (q[:, pp, aa].T * (mkt.X * hc)[pp[:, None], idx[aa]]).sum(1)
    d = D[pp, aa]
    calm_below = cv < calm_lines[1][0, aa] * d
    if stop_floor is not None:
        calm_below |= (cv - d < stop_floor[pp, aa]) & (cv < pol.nav_stop_below * d)
    sel = run[pp] > 0
    regime_liq += np.bincount(pp, weights=(~calm_below & sel), minlength=regime_liq.size)


def _liquidation_round(
    pp: np.ndarray,
    aa: np.ndarray,
    q: np.ndarray,
    C: np.ndarray,
    D: np.ndarray,
    full: np.ndarray,
    target: np.ndarray,
    V: np.ndarray,
    mkt: Market,
    h: np.ndarray,
    idx: np.ndarray,
    pol: PolicyArrays,
    cap_left: np.ndarray,
    scale: np.ndarray,
    penalty: np.ndarray,
) -> np.ndarray:
    """One round of forced sales by the accounts (pp, aa) in liquidation; updates in place.
    Returns the paths where something was sold (empty when nothing could be offered: all
    sealed, halted or sold, or the day's capacity used)."""
    S = mkt.S
    sec = idx[aa]  # (n, K)
    qn = q[:, pp, aa].T  # (n, K)
    pcol = pp[:, None]
    Xk = mkt.X[pcol, sec]
    sellk = ~(mkt.halted[pcol, sec] | mkt.sealed[pcol, sec])
    hk = h[pcol, sec]
    mvk = qn * Xk
    smv = (mvk * sellk).sum(1)
    sv = (mvk * hk * sellk).sum(1)
    Cn, Dn, Tn = C[pp, aa], D[pp, aa], np.broadcast_to(target, D.shape)[pp, aa]
    hs = np.where(smv > 0, sv / np.where(smv > 0, smv, 1.0), 1.0)
    denom = np.maximum(Tn * (1.0 - pol.penalty) - hs, 1e-6)
    y = np.clip((Tn * Dn - (Cn + V[pp, aa])) / denom, 0.0, None)
    y = np.where(full[pp, aa], smv, np.minimum(y * 1.0001, smv))
    phi = np.where(smv > 0, y / np.where(smv > 0, smv, 1.0), 0.0)  # (n,)
    order = mvk * sellk * phi[:, None]  # (n, K)
    flat = (pcol * S + sec).ravel()
    offer = np.bincount(flat, weights=order.ravel(), minlength=mkt.P * S).reshape(mkt.P, S)
    nothing = np.zeros(0, dtype=np.intp)
    if not (offer > 1e-12).any():
        return nothing
    F = np.where(offer > 0, np.minimum(1.0, cap_left / np.where(offer > 0, offer, 1.0)), 0.0)
    sold = offer * F
    if not (sold > 1e-12).any():
        return nothing  # everything offered waits behind seals, halts or exhausted capacity
    cap_left -= offer * F
    fill = mkt.impact(offer * F, scale)  # also moves the prices (cascade)
    frac_k = phi[:, None] * sellk * F[pcol, sec]  # share of each position sold
    gross = (mvk * frac_k * fill[pcol, sec]).sum(1)
    q[:, pp, aa] = (qn * (1.0 - frac_k)).T
    pen = pol.penalty * gross
    penalty += np.bincount(pp, weights=pen, minlength=mkt.P)
    cash = Cn + gross - pen
    pay = np.minimum(Dn, cash)
    D[pp, aa] = Dn - pay
    C[pp, aa] = cash - pay
    return np.flatnonzero((sold > 0).any(1))  # the paths whose prices or books moved


def allocate_deficit(
    deficit: np.ndarray, penalty: np.ndarray, insurance: np.ndarray, junior: np.ndarray
) -> dict[str, np.ndarray]:
    """The part of the deficit (what borrowers' margin and reserve could not cover) that each
    layer absorbs, in order: liquidation penalties → insurance fund → junior → senior (the
    senior takes whatever is left: it is recorded, never hidden)."""
    rest = np.asarray(deficit, dtype=float)
    out: dict[str, np.ndarray] = {}
    for name, cap in (("penalty", penalty), ("insurance", insurance), ("junior", junior)):
        a = np.minimum(rest, cap)
        out[name] = a
        rest = rest - a
    out["senior"] = rest
    return out


def _waterfall(
    book: BookArrays,
    M: np.ndarray,
    R0: np.ndarray,
    equity: np.ndarray,
    deficit: np.ndarray,
    penalty: np.ndarray,
    interest: np.ndarray,
    ever_liq: np.ndarray,
    stressed_days: np.ndarray,
    sealed_share: np.ndarray,
    scale: np.ndarray,
    pool_yuan: float,
    junior_ratio: float,
    insurance_seed_yuan: float,
    pol: PolicyArrays,
    strategy_losses: dict[str, np.ndarray] | None = None,
    switch_liq: np.ndarray | None = None,
    regime_liq: np.ndarray | None = None,
    lent_share: np.ndarray | None = None,
) -> ChunkResult:
    P = M.shape[0]
    deposits = M + R0
    loss = np.clip(deposits - equity, 0.0, None)
    margin_loss = np.minimum(loss, M)
    reserve_loss = loss - margin_loss
    tier = book.tier
    tier_loss = np.zeros((P, 4))
    hist = np.zeros((4, 1001))
    pct = np.clip(np.round(1000 * loss / deposits), 0, 1000).astype(np.int64)
    for t in (1, 2, 3):
        m = tier == t
        if m.any():
            tier_loss[:, t] = loss[:, m].sum(1) / deposits[:, m].sum(1)
            hist[t] = np.bincount(pct[:, m].ravel(), minlength=1001)
    d_total = deficit.sum(1) * scale
    if strategy_losses is not None:
        d_total = d_total + strategy_losses["deficit"]
    pen = penalty * scale
    fund = insurance_seed_yuan + pol.premium * interest * scale
    junior = junior_ratio * pool_yuan
    senior = pool_yuan - junior
    absorbed = allocate_deficit(d_total, pen, fund, junior * np.ones(P))
    strategy = None
    if strategy_losses is not None:
        from crowdleverage.risk.stress.strategy import attribute

        strategy = attribute(strategy_losses, absorbed, d_total)
    layer_loss = {
        "borrower_margin": margin_loss.sum(1) * scale,
        "borrower_reserve": reserve_loss.sum(1) * scale,
        **absorbed,
    }
    ones = np.ones(P)
    layer_capital = {
        "borrower_margin": M.sum(1) * scale,
        "borrower_reserve": R0.sum(1) * scale,
        "penalty": np.maximum(pen, 1e-9),
        "insurance": fund,
        "junior": junior * ones,
        "senior": senior * ones,
    }
    return ChunkResult(
        layer_loss=layer_loss,
        layer_capital=layer_capital,
        tier_loss=tier_loss,
        tier_hist=hist,
        deficit=d_total,
        insurance_exhausted=d_total > pen + fund + 1e-6,
        liquidations=ever_liq.sum(1),
        stressed_days=stressed_days,
        sealed_share=sealed_share,
        strategy=strategy,
        switch_liquidations=np.zeros(P) if switch_liq is None else switch_liq,
        regime_liquidations=np.zeros(P) if regime_liq is None else regime_liq,
        lent_share=np.ones(P) if lent_share is None else lent_share,
    )
