"""Plots of a backtest: one self-contained plotly HTML page (plotly.js embedded: works offline)
with the equity curve, the drawdown, the traded spread with the position, and the account's
margin ratio with the brake's stage."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crowdleverage.strategies.backtest import BacktestResult


def figure(result: BacktestResult) -> go.Figure:
    d = result.daily
    eq = d["equity_fen"] / 100.0
    dd = eq / eq.cummax() - 1.0
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=("equity (元)", "drawdown", "spread (bps) and position", "ratio and brake"),
    )
    fig.add_trace(go.Scatter(x=d.index, y=eq, name="equity"), row=1, col=1)
    fig.add_trace(go.Scatter(x=d.index, y=dd, name="drawdown", fill="tozeroy"), row=2, col=1)
    fig.add_trace(go.Scatter(x=d.index, y=d["spread_bps"], name="spread bps"), row=3, col=1)
    pos_scale = float(d["spread_bps"].abs().max() or 1.0)
    fig.add_trace(
        go.Scatter(x=d.index, y=d["position"] * pos_scale, name="position", line_shape="hv"),
        row=3,
        col=1,
    )
    fig.add_trace(go.Scatter(x=d.index, y=d["ratio_bps"] / 100.0, name="ratio %"), row=4, col=1)
    fig.add_trace(
        go.Scatter(x=d.index, y=d["stage"] * 50.0, name="brake stage ×50", line_shape="hv"),
        row=4,
        col=1,
    )
    fig.update_layout(title=f"{result.name} backtest", height=1000, showlegend=True)
    return fig


def write_html(result: BacktestResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(result).write_html(str(path), include_plotlyjs=True, full_html=True)
    return path
