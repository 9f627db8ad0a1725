"""Dashboard strings: zh-CN by default, English on request (cookie `lang`)."""

from __future__ import annotations

LANGS = ("zh", "en")

STRINGS: dict[str, tuple[str, str]] = {
    "title": ("众筹配资平台", "CrowdLeverage"),
    "tagline": ("合规的众筹股票配资：链上风控，托管双记账", "Compliant pooled margin financing"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "risk_panel": ("风控面板", "Risk panel"),
    "transparency": ("信息披露", "Transparency"),
    "my_account": ("我的账户", "My account"),
    "api_docs": ("接口文档", "API docs"),
    "trade_date": ("交易日", "Trade date"),
    "paused": ("平台已暂停", "Platform paused"),
    "running": ("运行中", "Running"),
    "ratio_distribution": ("维持担保比例分布", "Margin-ratio distribution"),
    "accounts_at_risk": ("接近或低于预警/平仓线的账户", "Accounts near or under the lines"),
    "liquidations": (
        "进行中的强制平仓（含封板等待）",
        "Liquidations in progress (incl. behind seals)",
    ),
    "pool_utilisation": ("资金池使用率", "Pool utilisation"),
    "tranche_nav": ("分级净值", "Tranche NAV"),
    "senior": ("优先级", "Senior"),
    "junior": ("劣后级", "Junior"),
    "insurance": ("风险准备金", "Insurance pool"),
    "coverage": ("覆盖率", "Coverage"),
    "exposure_security": ("个股敞口", "Exposure by security"),
    "exposure_board": ("板块敞口", "Exposure by board"),
    "account": ("账户", "Account"),
    "tier": ("档位", "Tier"),
    "status": ("状态", "Status"),
    "ratio": ("担保比例", "Ratio"),
    "debt": ("负债", "Debt"),
    "warning_line": ("预警线", "Warning line"),
    "liquidation_line": ("平仓线", "Liquidation line"),
    "initial_line": ("开仓线", "Initial line"),
    "code": ("代码", "Code"),
    "quantity": ("数量", "Quantity"),
    "reason": ("原因", "Reason"),
    "price": ("价格", "Price"),
    "fee_schedule": ("费率与杠杆档位", "Fees and leverage tiers"),
    "max_leverage": ("最高杠杆", "Max leverage"),
    "rate": ("年利率", "Rate (APR)"),
    "max_drawdown": ("最大回撤", "Max drawdown"),
    "custodian": ("托管银行", "Custodian bank"),
    "reconciliation": ("最近对账", "Latest reconciliation"),
    "proof_root": ("负债证明根哈希", "Proof-of-liabilities root"),
    "total_liabilities": ("负债总额", "Total liabilities"),
    "aggregate_risk": ("实时风险汇总", "Real-time aggregate risk"),
    "wallet": ("钱包余额", "Wallet"),
    "holdings": ("持有份额", "Holdings"),
    "units": ("份额", "Units"),
    "value": ("价值", "Value"),
    "positions": ("持仓", "Positions"),
    "cash": ("现金", "Cash"),
    "pending": ("挂单冻结", "Reserved for orders"),
    "reserve": ("补仓准备金", "Reserve"),
    "market_value": ("市值", "Market value"),
    "history": ("流水", "History"),
    "place_order": ("下单", "Place order"),
    "buy": ("买入", "Buy"),
    "sell": ("卖出", "Sell"),
    "submit": ("提交", "Submit"),
    "no_accounts": ("暂无账户", "No accounts"),
    "none": ("无", "None"),
    "open_account": ("开立配资账户", "Open a margin account"),
    "demo_logins": ("演示账户", "Demo logins"),
    "licence_note": (
        "本软件供持牌机构在监管沙盒中试点使用，不替代任何牌照。",
        "Software for licensed parties in a supervised pilot; it does not replace a licence.",
    ),
    "live": ("实时", "live"),
    "fees": ("费用", "Fees"),
    "cost": ("成本", "Cost"),
    "date": ("日期", "Date"),
    "kind": ("类型", "Kind"),
    "amount": ("金额(元)", "Amount (元)"),
    "utilisation": ("使用率", "Utilisation"),
    "total_debt": ("融资总额", "Total financing"),
    "accounts": ("账户数", "Accounts"),
    "warning": ("预警", "Warning"),
    "liquidating": ("平仓中", "Liquidating"),
    "events": ("风控事件", "Risk events"),
}


def translator(lang: str):  # type: ignore[no-untyped-def]
    idx = 1 if lang == "en" else 0

    def t(key: str) -> str:
        pair = STRINGS.get(key)
        return key if pair is None else pair[idx]

    return t
