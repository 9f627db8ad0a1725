"""A straightforward per-account loop of the same margin policy as `engine.simulate`.

It exists for two reasons: the benchmark measures the vectorised engine against it, and a test
checks that both give the same losses on the same market. The market, the opening of the book
and the regime indicator are shared (they are not per account); every account's top-up,
liquidation orders, fills, default and final valuation are computed one account at a time.
"""

from __future__ import annotations

import math

import numpy as np

from crowdleverage.risk.stress.engine import (
    CAPACITY_SHARE,
    MAX_ROUNDS,
    TRADING_DAYS,
    BookArrays,
    ChunkResult,
    PolicyArrays,
    RegimeState,
    _haircuts,
    _waterfall,
    open_book,
    regime_step,
    regime_today,
)
from crowdleverage.risk.stress.market import Market


def _lines(pol: PolicyArrays, t: int, stressed: bool, w: float = 1.0) -> tuple[float, float, float]:
    """(warning, liquidation, target) of tier `t`, raised while stressed (by the share `w`
    of the rise while it phases in)."""
    init, liq, warn = pol.initial[t], pol.liquidation[t], pol.warning[t]
    if not stressed:
        return warn, liq, init
    line = liq + w * (pol.stress_line_share * (init - liq) + pol.stress_line_add)
    return max(warn + w * pol.stress_line_add, line), line, init + pol.stress_target_add


def _value(q: np.ndarray, price: np.ndarray, p: int, a: int, idx: np.ndarray) -> float:
    v = 0.0
    for k in range(idx.shape[1]):
        v += q[k, p, a] * price[p, idx[a, k]]
    return v


def simulate_loop(
    book: BookArrays,
    pol: PolicyArrays,
    mkt: Market,
    boards: np.ndarray,
    horizon: int,
    loans_yuan: float,
    pool_yuan: float,
    junior_ratio: float,
    insurance_seed_yuan: float,
) -> ChunkResult:
    P, A, K = mkt.P, book.tier.size, book.idx.shape[1]
    idx, tier = book.idx, book.tier
    scale, M, D, R, q = open_book(book, pol, boards, loans_yuan, mkt.adv)
    R0, C = R.copy(), np.zeros((P, A))
    # NAV stop: the opening book is each account's reference
    stop_floor = np.full((P, A), -math.inf)
    if pol.nav_stop > 0:
        for p in range(P):
            for a in range(A):
                v0 = _value(q, boards, p, a, idx)
                stop_floor[p, a] = v0 - D[p, a] - pol.nav_stop * v0
    liq = np.zeros((P, A), dtype=bool)
    full = np.zeros((P, A), dtype=bool)
    ever = np.zeros((P, A), dtype=bool)
    deficit = np.zeros((P, A))
    penalty, interest, sdays = np.zeros(P), np.zeros(P), np.zeros(P)
    regime = RegimeState.start(P, pol)
    run = np.zeros(P, dtype=np.int64)  # consecutive stressed days
    sealed_share = np.zeros((P, horizon))
    w_prev = np.zeros(P)
    for t in range(horizon):
        X_close = mkt.X
        mkt.step(t)
        for p in range(P):
            for a in range(A):
                accr = D[p, a] * (pol.apr[tier[a]] / TRADING_DAYS)
                D[p, a] += accr
                interest[p] += accr
        sealed_share[:, t] = mkt.sealed.mean(1)
        stressed = regime_today(regime, mkt, pol)
        sdays += stressed
        run = np.where(stressed, run + 1, 0)
        w = pol.phase(run)
        h = _haircuts(mkt, boards, pol, w)
        if pol.nav_stop > 0 and pol.stop_follows_haircuts:  # the keeper's reference shift
            h_prev = _haircuts(mkt, boards, pol, w_prev)
            for p in range(P):
                if w[p] == w_prev[p]:
                    continue
                for a in range(A):
                    stop_floor[p, a] -= sum(
                        q[k, p, a] * X_close[p, idx[a, k]]
                        * (h_prev[p, idx[a, k]] - h[p, idx[a, k]])
                        for k in range(K)
                    )  # fmt: skip
        w_prev = w
        hX = mkt.X * h
        for p in range(P):
            for a in range(A):
                if not pol.use_reserve or liq[p, a] or R[p, a] <= 0 or D[p, a] <= 1e-12:
                    continue
                v = _value(q, hX, p, a, idx)
                warn, _, target = _lines(pol, tier[a], bool(stressed[p]), w[p])
                if (C[p, a] + v) / D[p, a] < warn:
                    x = max(0.0, min(D[p, a] - (C[p, a] + v) / target, R[p, a]))
                    D[p, a] -= x
                    R[p, a] -= x
        cap_left = CAPACITY_SHARE * mkt.adv / scale[:, None]
        for _ in range(MAX_ROUNDS):
            if not _round(q, C, D, liq, full, ever, stressed, w, mkt, h, book, pol, cap_left,
                          scale, penalty, stop_floor):  # fmt: skip
                break
        for p in range(P):
            for a in range(A):
                hv = _value(q, mkt.X * h, p, a, idx)
                has_debt = D[p, a] > 1e-12
                ratio = (C[p, a] + hv) / D[p, a] if has_debt else math.inf
                target = _lines(pol, tier[a], bool(stressed[p]))[2]
                if not has_debt or (not full[p, a] and ratio >= target):
                    liq[p, a] = full[p, a] = False
                if has_debt and _value(q, mkt.X, p, a, idx) <= 1e-12:
                    use = min(R[p, a], D[p, a])
                    R[p, a] -= use
                    deficit[p, a] += D[p, a] - use
                    D[p, a] = 0.0
                    liq[p, a] = full[p, a] = False
        regime = regime_step(regime, mkt, pol)  # today's close
    cons = np.where(mkt.sealed, mkt.X * (1.0 - mkt.limit), mkt.X)
    cons = np.where(mkt.halted, mkt.X * pol.end_halted_mark, cons)
    equity = np.zeros((P, A))
    for p in range(P):
        for a in range(A):
            assets = C[p, a] + R[p, a] + _value(q, cons, p, a, idx)
            deficit[p, a] += max(D[p, a] - assets, 0.0)
            equity[p, a] = max(assets - D[p, a], 0.0)
    del K
    return _waterfall(
        book, M, R0, equity, deficit, penalty, interest, ever, sdays, sealed_share, scale,
        pool_yuan, junior_ratio, insurance_seed_yuan, pol,
    )  # fmt: skip


def _round(
    q: np.ndarray,
    C: np.ndarray,
    D: np.ndarray,
    liq: np.ndarray,
    full: np.ndarray,
    ever: np.ndarray,
    stressed: np.ndarray,
    w: np.ndarray,
    mkt: Market,
    h: np.ndarray,
    book: BookArrays,
    pol: PolicyArrays,
    cap_left: np.ndarray,
    scale: np.ndarray,
    penalty: np.ndarray,
    stop_floor: np.ndarray,
) -> bool:
    P, A = D.shape
    idx, tier, K = book.idx, book.tier, book.idx.shape[1]
    hX = mkt.X * h
    orders: list[tuple[int, int, list[float], float]] = []
    offer = np.zeros((P, mkt.S))
    for p in range(P):
        for a in range(A):
            _, line, target = _lines(pol, tier[a], bool(stressed[p]), w[p])
            v = _value(q, hX, p, a, idx)
            stopped = (
                D[p, a] > 1e-12 and C[p, a] + v - D[p, a] < stop_floor[p, a]
                and C[p, a] + v < pol.nav_stop_below * D[p, a]
            )  # fmt: skip
            below = D[p, a] > 1e-12 and (C[p, a] + v) / D[p, a] < line
            if (below or stopped) and not liq[p, a]:
                liq[p, a] = ever[p, a] = True
                full[p, a] = pol.always_full_close or (pol.stress_full_close and stressed[p])
                full[p, a] = full[p, a] or stopped
            if not liq[p, a]:
                continue
            smv = sv = 0.0
            for k in range(K):
                s = idx[a, k]
                if not (mkt.halted[p, s] or mkt.sealed[p, s]):
                    smv += q[k, p, a] * mkt.X[p, s]
                    sv += q[k, p, a] * mkt.X[p, s] * h[p, s]
            if smv <= 0:
                continue
            if full[p, a]:
                y = smv
            else:
                hs = sv / smv
                denom = max(target * (1.0 - pol.penalty) - hs, 1e-6)
                y = min(max((target * D[p, a] - (C[p, a] + v)) / denom, 0.0) * 1.0001, smv)
            phi = y / smv
            per_k = []
            for k in range(K):
                s = idx[a, k]
                sell = not (mkt.halted[p, s] or mkt.sealed[p, s])
                o = q[k, p, a] * mkt.X[p, s] * phi if sell else 0.0
                per_k.append(phi if sell else 0.0)
                offer[p, s] += o
            orders.append((p, a, per_k, smv))
    if not orders or not (offer > 1e-12).any():
        return False
    F = np.where(offer > 0, np.minimum(1.0, cap_left / np.where(offer > 0, offer, 1.0)), 0.0)
    if not (offer * F > 1e-12).any():
        return False
    cap_left -= offer * F
    X_before = mkt.X
    fill = mkt.impact(offer * F, scale)
    for p, a, per_k, _ in orders:
        gross = 0.0
        for k in range(K):
            s = idx[a, k]
            frac = per_k[k] * F[p, s]
            gross += q[k, p, a] * X_before[p, s] * frac * fill[p, s]
            q[k, p, a] *= 1.0 - frac
        pen = pol.penalty * gross
        penalty[p] += pen
        cash = C[p, a] + gross - pen
        pay = min(D[p, a], cash)
        D[p, a] -= pay
        C[p, a] = cash - pay
    return True
