"""Stress reports an auditor can file: HTML with plotly charts (plotly's JavaScript embedded
from the installed package, no network) and a PDF (matplotlib's PDF backend)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from crowdleverage.risk.stress.engine import LAYERS

LAYER_TITLES = {
    "borrower_margin": "borrower margin",
    "borrower_reserve": "borrower reserve",
    "penalty": "liquidation penalty",
    "insurance": "insurance fund",
    "junior": "junior tranche",
    "senior": "senior tranche",
}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def scenario_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per scenario and layer (and tier): mean, VaR 99%, ES 99% of loss, P(senior
    loss), P(insurance exhausted)."""
    rows = []
    for name, r in result["scenarios"].items():
        for layer in LAYERS:
            s = r["layers"][layer]
            rows.append([name, LAYER_TITLES[layer], _pct(s["mean"]), _pct(s["var99"]),
                         _pct(s["es99"]), _pct(r["p_senior_loss"]),
                         _pct(r["p_insurance_exhausted"])])  # fmt: skip
        for t in ("1", "2", "3"):
            s = r["tiers"][t]
            umb = (r.get("umbrella") or {}).get(t, {}).get("median_account_loss")
            rows.append([name, f"borrowers tier {t} (median {_pct(s['median_account_loss'])}"
                         f", umbrella {_pct(umb)})", _pct(s["mean"]), _pct(s["var99"]),
                         _pct(s["es99"]), "", ""])  # fmt: skip
        if "strategy" in r:
            rows += _strategy_rows(name, r["strategy"])
    return rows


def policy_lines(result: dict[str, Any]) -> list[str]:
    """The stressed-regime policy, the NAV stop and the liquidity cap the run used, in words,
    and per scenario what the regime switch and the cap did to the book."""
    p = result["params"]
    s = p.get("stressed_regime", {})
    days = int(s.get("phase_in_days", 0))
    phase = (f"phased in over {days} stressed days (the switch day keeps the calm lines and "
             f"haircuts, each later stressed day 1/{days} more)" if days > 0 else
             "in force from the switch day")  # fmt: skip
    out = [
        f"Stressed regime: new financing stops; below the line the account is "
        f"{'closed in full' if s.get('full_close') else 'de-levered'}; the liquidation line "
        f"rises by {s.get('line_share_bps', 0) / 100:g}% of (initial − line) and haircuts "
        f"count at {s.get('haircut_mult_bps', 10_000) / 100:g}%, {phase}.",
        f"NAV stop: closed in full {p.get('nav_stop_bps', 0) / 100:g}% of the reference "
        f"assets below the reference equity, while the ratio is below "
        f"{p.get('nav_stop_below_bps', 0) / 100:g}%.",
        "Liquidity cap: " + (
            f"the platform's position per security ≤ {p['liquidity_cap_bps'] / 100:g}% of its "
            "average daily amount (buys over it go to the account's other securities, then "
            "financing is refused)." if p.get("liquidity_cap_bps") else "not modelled."),
    ]  # fmt: skip
    for name, r in result["scenarios"].items():
        if "switch_liquidations_mean" not in r:
            continue
        out.append(
            f"{name}: accounts entering liquidation on a switch day "
            f"{r['switch_liquidations_mean']:.1f}, by the stressed parameters alone "
            f"{r['regime_liquidations_mean']:.1f} (mean per path, of {result['book']['accounts']}"
            f"); loans lent under the cap {100 * r.get('lent_share_mean', 1.0):.1f}% of the book's"
        )
    return out


def _strategy_rows(name: str, st: dict[str, Any]) -> list[list[str]]:
    """The strategy books' own line (loss as a share of their equity) and the yuan each
    layer absorbed of it (mean per path; max in the ES column; P(reached) in the last)."""
    eq = st["equity_yuan"]
    ls = st["loss_yuan"]

    def frac(x: float) -> str:
        return _pct(x / eq) if eq > 0 else "—"

    rows = [[name, f"strategy books ×{st['books']} ({st['shock']}) / their equity",
             frac(ls["mean"]), frac(ls["var99"]), frac(ls["es99"]), "", ""]]  # fmt: skip
    for layer, v in st["layers"].items():
        title = LAYER_TITLES.get(layer, layer.replace("_", " "))
        mean, top = f"{v['loss_yuan_mean']:,.0f}", f"max {v['loss_yuan_max']:,.0f}"
        reached = f"reached {_pct(v['p_reached'])}"
        rows.append([name, f"  strategy → {title} (元)", mean, "", top, reached, ""])
    return rows


HEADER = ["scenario", "layer", "mean loss", "VaR 99%", "ES 99%", "P(senior loss)", "P(ins. out)"]


def _umbrella(r: dict[str, Any], tier: str) -> float | None:
    m = ((r.get("umbrella") or {}).get(tier) or {}).get("median_account_loss")
    return None if m is None else 100 * m


def _figures(result: dict[str, Any]) -> list[Any]:
    import plotly.graph_objects as go

    names = list(result["scenarios"])
    figs = []
    fig = go.Figure()
    for layer in ("insurance", "junior", "senior"):
        fig.add_bar(
            name=f"{LAYER_TITLES[layer]} ES 99%",
            x=names,
            y=[100 * result["scenarios"][n]["layers"][layer]["es99"] for n in names],
        )
    fig.update_layout(title="Tranche and fund losses, ES 99% (% of capital)", barmode="group")
    figs.append(fig)
    fig = go.Figure()
    for t in ("1", "2", "3"):
        fig.add_bar(
            name=f"tier {t}",
            x=names,
            y=[
                100 * (result["scenarios"][n]["tiers"][t]["median_account_loss"] or 0)
                for n in names
            ],
        )
        fig.add_scatter(
            name=f"umbrella trust, tier {t} leverage",
            x=names,
            mode="markers",
            y=[_umbrella(result["scenarios"][n], t) for n in names],
        )
    fig.update_layout(title="Borrowers' median loss (% of deposits) vs an umbrella trust")
    figs.append(fig)
    for n in names:
        fig = go.Figure()
        for t in ("1", "2", "3"):
            fig.add_bar(name=f"tier {t}", x=list(range(100)),
                        y=result["scenarios"][n]["tiers"][t]["account_loss_hist_1pct"])  # fmt: skip
        fig.update_layout(
            title=f"{n}: distribution of borrowers' loss (% of deposits)", barmode="stack"
        )
        figs.append(fig)
    return figs


def write_html(result: dict[str, Any], path: Path) -> Path:
    figs = _figures(result)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in scenario_rows(result)
    )
    targets = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_pct(v['value'])}</td><td>{_pct(v['limit'])}</td>"
        f"<td>{'met' if v['ok'] else 'NOT met'}</td></tr>"
        for k, v in result["targets"].items()
    )
    params = html.escape(repr(result["params"]))
    doc = f"""<!doctype html><html><head><meta charset="utf-8">
<title>CrowdLeverage stress report {html.escape(result["date"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:2px 6px}}
table{{border-collapse:collapse;font-size:13px}}</style></head><body>
<h1>Stress report (压力测试) — {html.escape(result["date"])}</h1>
<p>Suite <b>{html.escape(result["suite"])}</b>, created {html.escape(result["created_at"])},
{result["options"]["paths"]} paths per scenario, seed {result["options"]["seed"]},
parameters {html.escape(result["params_hash"])}; all targets met:
<b>{"yes" if result["all_targets_met"] else "no"}</b>.</p>
<h2>Scenarios</h2><table><tr>{"".join(f"<th>{h}</th>" for h in HEADER)}</tr>{table}</table>
<h2>Policy</h2>{"".join(f"<p>{html.escape(x)}</p>" for x in policy_lines(result))}
<h2>Targets</h2><table><tr><th>target</th><th>value</th><th>limit</th><th></th></tr>
{targets}</table>
<h2>Charts</h2>{"".join(parts)}
<h2>Book</h2><pre>{html.escape(repr(result["book"]))}</pre>
<h2>Parameters</h2><pre>{params}</pre></body></html>"""
    path.write_text(doc, encoding="utf-8")
    return path


def write_pdf(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    rows = scenario_rows(result)
    per_page = 36
    with PdfPages(path) as pdf:
        for start in range(0, len(rows), per_page):
            fig = plt.figure(figsize=(11.69, 8.27))
            fig.text(0.03, 0.96, f"CrowdLeverage stress report {result['date']} — "
                     f"suite {result['suite']}, {result['options']['paths']} paths, seed "
                     f"{result['options']['seed']}, parameters {result['params_hash']}",
                     fontsize=10)  # fmt: skip
            ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
            ax.axis("off")
            tab = ax.table(cellText=rows[start : start + per_page], colLabels=HEADER, loc="top")
            tab.auto_set_font_size(False)
            tab.set_fontsize(6.5)
            tab.auto_set_column_width(list(range(len(HEADER))))
            pdf.savefig(fig)
            plt.close(fig)
        fig = plt.figure(figsize=(11.69, 8.27))
        ax = fig.add_subplot(1, 1, 1)
        lines = [
            f"{k}: {_pct(v['value'])} (limit {_pct(v['limit'])}) {'met' if v['ok'] else 'NOT met'}"
            for k, v in result["targets"].items()
        ]
        ax.axis("off")
        text = "Policy\n" + "\n".join(policy_lines(result)) + "\n\nTargets\n" + "\n".join(lines)
        ax.text(0, 1, text, va="top", fontsize=7, family="monospace", wrap=True)
        pdf.savefig(fig)
        plt.close(fig)
        names = list(result["scenarios"])
        fig, ax = plt.subplots(figsize=(11.69, 8.27))
        width = 0.25
        for i, t in enumerate(("1", "2", "3")):
            ys = [100 * (result["scenarios"][n]["tiers"][t]["median_account_loss"] or 0)
                  for n in names]  # fmt: skip
            ax.bar([j + i * width for j in range(len(names))], ys, width, label=f"tier {t}")
        ax.set_xticks([j + width for j in range(len(names))], names)
        ax.set_ylabel("median borrower loss, % of deposits")
        ax.legend()
        pdf.savefig(fig)
        plt.close(fig)
    return path
