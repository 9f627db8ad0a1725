# ruff: noqa: E501  (a message catalogue: one entry a line reads best)
"""Dashboard strings: one message catalogue, zh-CN by default, English on request (`?lang=en`,
then the `lang` cookie).

The catalogue is `STRINGS`: key → (zh-CN, English). Every user-visible string of the web pages
is a key here — labels, enums (`status.healthy`, `board.MAIN`, `side.buy`), risk-event names
(`event.<kind>`), statement-line kinds (`history.<kind>`), fee keys (`fee.<key>`), the custodian
block (`custodian.<key>`/`custodian_v.<key>`) and errors (`error.<CrowdLevError.code>`,
`error.<exact message>` — a contract's revert reason — or `rule.<name>` for an error whose
details name a rule: `RuleViolation(msg, rule="price_band", price_fen=…)`, its `{figures}`
from those details, `*_fen` in 元; `Translator.error` and base.html's `apiError`). No
third-party catalogue format (Babel/gettext) is needed for two languages; the browser test
walks each zh-CN page's DOM and fails on a catalogue key or an English enum left on it.

How to add strings (other pages/templates do the same):

1. add `"my_key": ("中文", "English")` to `STRINGS` (placeholders as `{name}`);
2. in a template use `{{ t('my_key') }}` or `{{ t('my_key', name=value) }}`; for an enum
   `{{ te('status', a.status) }}` (→ `t('status.' ~ value)`);
3. strings a page's JavaScript needs: `{{ t.js(['key1', 'key2']) | tojson }}` gives a
   {key: text} object for the page's language;
4. amounts: `| yuan` (exact, `12,345.67`), `| wan` (元 with 万/亿 in zh-CN, K/M in English —
   display only); times: `| sh_time` (an ISO UTC instant in Asia/Shanghai).

A missing key renders as the key itself (and logs `i18n_missing`) so the DOM check catches it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from crowdleverage.domain.money import format_cn, format_yuan

log = logging.getLogger("crowdleverage.web")

LANGS = ("zh", "en")
SHANGHAI = ZoneInfo("Asia/Shanghai")

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
    "tier_institutional": ("机构策略账户", "institutional strategy accounts"),
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
    "market_regime": ("市场状态（动态保证金）", "Market regime (dynamic margin)"),
    "regime_calm": ("平稳", "Calm"),
    "regime_stressed": ("压力", "Stressed"),
    "regime_indicator": ("压力指标（占进入阈值）", "Stress indicator (of the entry threshold)"),
    "share_limit_down": ("跌停封板占比", "Share sealed/locked limit-down"),
    "share_halted": ("停牌占比", "Share halted"),
    "halted": ("停牌", "Halted"),
    "halted_today": ("今日停牌（按最近收盘价计）", "Halted today (at the last close)"),
    "index_drawdown": ("指数回撤", "Index drawdown"),
    "regime_note": (
        "以上一交易日收盘计；进入压力状态后立即停止新增融资、低于平仓线时全部平仓，预警/平仓线的提高与压力折算率在随后的交易日内逐步生效（见下方“分步生效”）。",
        "At the last close; in the stressed regime new financing stops and an account below its line is closed in full at once, while the raised lines and the stressed haircuts phase in over the following trading days (see the phase-in below).",
    ),
    "stressed_phase": ("压力参数分步生效", "Stressed set phase-in"),
    "trading_days": ("个交易日", "trading days"),
    "stressed_phase_day": ("今日为压力状态交易日序号", "today is stressed day"),
    "stressed_phase_now": ("当前平仓线提高幅度", "line rise in force"),
    "stressed_phase_scale": ("折算系数", "haircut scale"),
    "stressed_phase_note": (
        "切换当日沿用平稳状态的预警/平仓线和折算率（仅因参数变化而被平仓的账户为零），此后每个压力交易日生效五分之一；上表“折算率（压力）”为当前链上生效值，恢复平稳后重置为完整压力参数。",
        "The switch day keeps the calm lines and haircuts (no account is closed by the change of parameters alone); each later stressed day adds a fifth of the step. The stressed haircut column above is what the chain holds now; back to calm it is the full stressed set again.",
    ),
    "risk_policy": ("风控参数（按市场状态）", "Risk policy by regime"),
    "haircut_normal": ("折算率（平稳）", "Haircut (calm)"),
    "haircut_stressed": ("折算率（压力）", "Haircut (stressed)"),
    "st_stock": ("ST / *ST", "ST / *ST"),
    "regime_on_chain": ("链上生效状态", "Regime in force on chain"),
    "liquidity_cap": (
        "流动性上限（占20日日均成交额）",
        "Liquidity cap (of the 20-day average traded amount)",
    ),
    "liquidity_cap_note": (
        "融资买入后，平台对单只证券的持仓市值不得超过该证券20日日均成交额的此比例；尚未公布成交额的证券暂不设此上限（资金池占比上限仍适用），公布为0则不得融资买入。",
        "After a buy that draws financing, the platform's position in a security may not exceed this share of its 20-day average traded amount; a security with no published figure has no such cap yet (the pool-share limit still applies); a published 0 refuses financed buys.",
    ),
    "liquidity_figure": ("20日日均成交额", "20-day avg. traded amount"),
    "platform_position": ("平台持仓市值", "Platform position"),
    "headroom": ("剩余额度", "Headroom"),
    "not_published": ("未公布", "not published"),
    "stress_test": ("压力测试", "Stress test"),
    "stress_none": ("尚未运行压力测试", "No stress test has run yet"),
    "scenario": ("情景", "Scenario"),
    "paths": ("路径数", "Paths"),
    "p_senior_loss": ("优先级亏损概率", "P(senior loss)"),
    "junior_es99": ("劣后级ES99", "Junior ES99"),
    "tier_median_loss": ("各档借款人亏损中位数", "Borrowers' median loss by tier"),
    "targets_met": ("全部目标达成", "All targets met"),
    "targets_missed": ("未达成的目标", "Targets missed"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "strategy_brake": ("策略账户流动性刹车", "Strategy accounts' liquidity brake"),
    "brake_stage": ("阶段", "Stage"),
    "new_financing": ("新增策略融资", "New strategy financing"),
    "allowed": ("允许", "allowed"),
    "stopped": ("停止", "stopped"),
    "strategy_accounts_open": ("已开策略账户", "Strategy accounts open"),
    # ── added in wave 2 (web): margin page, investor page, layout ──
    "nav_menu": ("菜单", "Menu"),
    "margin_page": ("融资融券账户", "Margin account"),
    "maintenance_ratio": ("维持担保比例", "Maintenance margin ratio"),
    "available_margin": ("可用保证金", "Available margin"),
    "nav_stop_assets": ("止损线（总资产）", "NAV stop (total assets)"),
    "nav_stop_note": (
        "总资产低于此值时账户全部平仓：建仓时的权益减去建仓时总资产的 {pct}（与伞形信托的止损线同理）",
        "Below these total assets the account is closed in full: the equity when the debt was"
        " drawn less {pct} of the assets then (like an umbrella trust's stop line)",
    ),
    "available_margin_note": (
        "在维持开仓线以上可再融资买入的额度（按引擎口径）",
        "What can still be used before the initial line (engine's valuation)",
    ),
    "total_assets": ("担保资产（折算后）", "Collateral (after haircut)"),
    "name": ("名称", "Name"),
    "sellable": ("可卖", "Sellable today"),
    "cost_price": ("成本价", "Cost price"),
    "last_price": ("最新价", "Last price"),
    "pnl": ("浮动盈亏", "P&L"),
    "share_of_account": ("占比", "Share"),
    "warning_price": ("预警价", "Warning price"),
    "liquidation_price": ("平仓价", "Liquidation price"),
    "line_prices_whole": ("全部持仓同比例下跌时", "If every holding fell together"),
    "line_prices_single": ("仅该股变动时", "If only this stock moved"),
    "line_prices_note": (
        "价格按引擎口径（保守价 × 折算率，担保比例向下取整）计算到分：跌至该价（含）即触及该线。",
        "Computed to the fen the engine's way (conservative price × haircut, ratio rounded"
        " down): at or below this price the account reaches the line.",
    ),
    "drop_needed": ("距离", "Fall needed"),
    "unreachable": ("不会触及", "not reachable"),
    "already_below": ("已低于", "already below"),
    "liq_status": ("平仓状态", "Liquidation"),
    "liq_none": ("—", "—"),
    "liq_pending_sell": ("待卖出", "to be sold"),
    "liq_reason.halted": ("停牌，复牌后卖出", "halted; sells when trading resumes"),
    "liq_reason.sealed": ("跌停封板，无法成交", "sealed at limit-down; cannot fill"),
    "liq_reason.t1": ("T+1 今日买入不可卖", "bought today (T+1); sells tomorrow"),
    "top_up_notice": ("追加保证金通知", "Margin call (top-up needed)"),
    "top_up_text": (
        "维持担保比例 {ratio} 已低于预警线 {line}。需追加保证金约 {need} 元使比例回到开仓线 {initial}，"
        "否则跌破平仓线 {liq} 后将强制平仓。",
        "The maintenance ratio {ratio} is under the warning line {line}. About {need} 元 of"
        " margin restores the initial line {initial}; under the liquidation line {liq} the"
        " positions are sold.",
    ),
    "top_up": ("追加保证金", "Top up margin"),
    "top_up_amount": ("金额(元)", "Amount (元)"),
    "top_up_done": ("已追加", "Topped up"),
    "bad_amount": ("请输入正确的金额（最多两位小数）", "Enter an amount (at most 2 decimals)"),
    "bad_price": ("请输入正确的价格（最多两位小数）", "Enter a price (at most 2 decimals)"),
    "order_placed": ("委托已提交", "Order placed"),
    "liq_in_progress": ("强制平仓进行中", "Liquidation in progress"),
    "as_of": ("行情日期", "Market date"),
    "yuan": ("元", "元"),
    # investor page
    "investor_page": ("我的出资", "My investments"),
    "nav": ("单位净值", "NAV per unit"),
    "units_held": ("持有份额", "Units held"),
    "value_at_nav": ("按净值市值(元)", "Value at NAV (元)"),
    "income": ("累计收益", "Income"),
    "nav_history": ("净值走势", "NAV history"),
    "subscribe": ("申购", "Subscribe"),
    "redeem": ("赎回", "Redeem"),
    "tranche": ("份额类别", "Tranche"),
    "epoch_schedule": (
        "申购/赎回在每个交易日收盘的结算周期执行：申购资金先冻结，按收盘净值确认份额；赎回按收盘净值兑付，"
        "受流动性缓冲和劣后级最低占比约束。",
        "Subscriptions and redemptions execute at each trading day's epoch close: subscribed"
        " cash is held until units are issued at the closing NAV; redemptions are paid at"
        " the closing NAV within the liquidity buffer and the minimum junior ratio.",
    ),
    "next_epoch": ("下一次结算", "Next epoch close"),
    "next_epoch_value": ("交易日 {date} 收盘", "at the {date} close"),
    "pending_requests": ("待执行申请", "Pending requests"),
    "request_queued": ("已提交，待结算", "Queued for the epoch close"),
    "proof_check": ("负债证明核验", "Proof-of-liabilities check"),
    "proof_check_note": (
        "下载您的包含证明，在浏览器中逐层计算 SHA-256 默克尔和树，并与公开发布的根哈希比对。",
        "Downloads your inclusion proof, recomputes the SHA-256 Merkle-sum tree in this"
        " browser and compares it with the published root.",
    ),
    "proof_verify": ("在浏览器中核验", "Verify in the browser"),
    "proof_ok": (
        "核验通过：您的余额 {balance} 元计入第 {epoch} 期负债总额 {total} 元（根哈希 {root}）",
        "Verified: your balance of {balance} 元 is counted in epoch {epoch}'s total of {total}"
        " 元 (root {root})",
    ),
    "proof_fail": ("核验失败：{reason}", "Verification failed: {reason}"),
    "proof_reason.root": (
        "计算出的根哈希与公开发布的不一致",
        "the computed root differs from the published one",
    ),
    "proof_reason.total": (
        "计算出的总额与公开发布的不一致",
        "the computed total differs from the published one",
    ),
    "proof_reason.malformed": ("证明格式错误", "the proof is malformed"),
    "proof_reason.owner": ("证明不属于当前用户", "the proof is not for this user"),
    "proof_reason.fetch": (
        "无法下载证明或公开根哈希",
        "the proof or the published root could not be downloaded",
    ),
    "proof_epoch": ("第 {epoch} 期", "epoch {epoch}"),
    "published_root": ("公开发布的根哈希", "Published root"),
    "onboarding": ("开户审核", "Onboarding"),
    "details": ("说明", "Details"),
    "epoch": ("结算期", "Epoch"),
    "cash_token_supply": ("链上 CashToken 发行量", "CashToken supply on chain"),
    "not_yet_run": ("尚未运行", "not yet run"),
    "sse_label": ("推送", "push"),
    "time_zone_note": (
        "时间为北京时间；行情日期为回放日期",
        "Times in Beijing time; market dates are the replay's",
    ),
    "counts": ("账户数", "Accounts"),
    "ratio_pct": ("担保比例(%)", "Ratio (%)"),
    "amount_wan": ("金额(万元)", "Amount (万元)"),
    "tier_n": ("{tier}档", "tier {tier}"),
    "forbidden": (
        "您的角色（{role}）无权访问{page}。",
        "Your role ({role}) may not open the {page}.",
    ),
    "step": ("步", "step"),
    "suite": ("测试集", "Suite"),
    # enums: account status, tranche, roles, reconciliation, regimes, board
    "status.healthy": ("正常", "healthy"),
    "status.warning": ("预警", "warning"),
    "status.liquidating": ("平仓中", "liquidating"),
    "status.liquidated": ("已平仓", "liquidated"),
    "recon.ok": ("一致", "ok"),
    "recon.break": ("不一致", "break"),
    "recon.not yet run": ("尚未运行", "not yet run"),
    "role.operator": ("运营", "operator"),
    "role.auditor": ("审计", "auditor"),
    "role.investor": ("出资人", "investor"),
    "role.borrower": ("被配资人", "borrower"),
    "role.compliance": ("合规", "compliance"),
    "role.custodian": ("托管", "custodian"),
    "role.broker": ("券商", "broker"),
    "side.buy": ("买入", "buy"),
    "side.sell": ("卖出", "sell"),
    "order.open": ("已报", "open"),
    "order.filled": ("已成交", "filled"),
    "order.partially_filled": ("部分成交", "partially filled"),
    "order.expired": ("已失效", "expired"),
    "board.MAIN": ("主板", "Main board"),
    "board.SME": ("中小板", "SME board"),
    "board.CHINEXT": ("创业板", "ChiNext"),
    "board.STAR": ("科创板", "STAR"),
    "board.BSE": ("北交所", "BSE"),
    "board.INDEX": ("指数", "Index"),
    # risk events (Platform._event kinds)
    "event.account_opened": ("开立账户", "account opened"),
    "event.auto_top_up": ("自动补仓", "automatic top-up"),
    "event.epoch_deferred": ("结算顺延", "epoch close deferred"),
    "event.liquidation_done": ("平仓完成", "liquidation done"),
    "event.liquidation_started": ("开始强制平仓", "liquidation started"),
    "event.margin_warning": ("担保比例预警", "margin warning"),
    "event.paused": ("平台暂停", "platform paused"),
    "event.resumed": ("平台恢复", "platform resumed"),
    "event.restored": ("恢复", "restored"),
    "event.regime": ("市场状态变化", "market regime"),
    "event.loss_waterfall": ("损失分摊", "loss waterfall"),
    "event.ratio": ("担保比例 {ratio}", "ratio {ratio}"),
    # history (statement line) kinds
    "history.deposit": ("入金", "deposit"),
    "history.withdrawal": ("出金", "withdrawal"),
    "history.subscription_requested": ("申购申请", "subscription requested"),
    "history.redemption_requested": ("赎回申请", "redemption requested"),
    "history.subscribed": ("申购确认", "subscribed"),
    "history.redeemed": ("赎回兑付", "redeemed"),
    "history.margin_deposit": ("转入保证金", "margin deposit"),
    "history.reserve_deposit": ("转入补仓准备金", "reserve deposit"),
    "history.account_withdrawal": ("转出至钱包", "account withdrawal"),
    "history.repayment": ("还款", "repayment"),
    "history.buy": ("买入", "buy"),
    "history.sell": ("卖出", "sell"),
    "history.liquidation_sell": ("强制平仓卖出", "liquidation sale"),
    "history.auto_top_up": ("自动补仓", "automatic top-up"),
    "history.interest": ("利息", "interest"),
    "detail.tranche": ("类别", "tranche"),
    "detail.units": ("份额", "units"),
    "detail.paid_fen": ("金额", "amount"),
    "detail.moved_fen": ("金额", "amount"),
    "detail.account_id": ("账户", "account"),
    "detail.code": ("代码", "code"),
    "detail.quantity": ("数量", "quantity"),
    "detail.reference": ("银行流水", "bank reference"),
    "detail.price_fen": ("价格", "price"),
    "detail.fee_fen": ("费用", "fee"),
    # fee keys (Platform.published_terms()["fees"])
    "fee.senior_target_apr_bps": ("优先级目标年化收益", "Senior target APR"),
    "fee.insurance_premium_bps_of_interest": (
        "风险准备金提取（占利息）",
        "Insurance premium (of interest)",
    ),
    "fee.platform_fee_bps_of_interest": ("平台服务费（占利息）", "Platform fee (of interest)"),
    "fee.liquidation_penalty_bps_of_sold": (
        "强制平仓违约金（占卖出额）",
        "Liquidation penalty (of the amount sold)",
    ),
    "fee.nav_stop_bps_of_reference_assets": (
        "止损线（占建仓资产）",
        "NAV stop (of reference assets)",
    ),
    "fee.nav_stop_below_ratio_bps": ("止损线适用比例上限", "NAV stop: only below ratio"),
    "fee.min_junior_ratio_bps": ("劣后级最低占比", "Minimum junior ratio"),
    "fee.max_utilisation_bps": ("资金池最高使用率", "Maximum pool utilisation"),
    # custodian block (api.endpoints.operator.CUSTODIAN_INFO keys and values)
    "custodian.name": ("名称", "Name"),
    "custodian.role": ("职责", "Role"),
    "custodian.statements": ("对账单", "Statements"),
    "custodian.reconciliation": ("对账", "Reconciliation"),
    "custodian_v.name": ("模拟托管银行", "Simulated custodian bank"),
    "custodian_v.role": (
        "在独立的客户资金专户中保管全部客户资金；以其账簿为准",
        "holds all client cash in a segregated omnibus account; its ledger is the book of record",
    ),
    "custodian_v.statements": (
        "每日 ISO 20022 camt.053 对账单；付款指令 pain.001",
        "ISO 20022 camt.053 daily; payouts by pain.001",
    ),
    "custodian_v.reconciliation": (
        "每个结算期后核对托管账簿与链上 CashToken（逐笔流水、发行量、每个地址余额）；不一致即暂停 CashToken 和平台",
        "custody ledger ↔ CashToken on chain (every reference, the supply and every"
        " address's balance) after every epoch; a break pauses CashToken and the platform",
    ),
    # onboarding (compliance.onboarding.applicant_view): steps, results, statuses
    "onb.step.validation": ("资料校验", "validation"),
    "onb.step.kyc": ("身份核验", "KYC"),
    "onb.step.sanctions": ("制裁名单筛查", "sanctions screening"),
    "onb.step.suitability": ("适当性评估", "suitability"),
    "onb.step.credit": ("信用评分", "credit"),
    "onb.step.decision": ("审批结果", "decision"),
    "onb.step.override": ("人工审批", "officer override"),
    "onb.step.review": ("复评", "review"),
    "onb.step.chain": ("上链", "on chain"),
    "onb.result.passed": ("通过", "passed"),
    "onb.result.clear": ("未命中", "clear"),
    "onb.result.hit": ("命中", "hit"),
    "onb.result.review": ("审核中", "under review"),
    "onb.result.not_applicable": ("不适用", "not applicable"),
    "onb.result.approve": ("批准", "approve"),
    "onb.result.decline": ("拒绝", "decline"),
    "onb.result.refer": ("转人工", "refer"),
    "onb.result.queued": ("已提交", "queued"),
    "onb.result.written": ("已写入", "written"),
    "onb.status.approved": ("已通过", "approved"),
    "onb.status.declined": ("未通过", "declined"),
    "onb.status.referred": ("人工审核中", "referred"),
    "onb.status.under_review": ("合规审核中", "under review"),
    "onb.status.pending": ("处理中", "pending"),
    # stress scenarios (risk.stress.scenarios names) and suites
    "stress.cb2016": ("2016年1月熔断（真实个股）", "2016-01 circuit breaker (real stocks)"),
    "stress.crash2015": ("2015年股灾（沪深300路径）", "2015 crash (CSI 300 path)"),
    "stress.deval2015": ("2015年8月汇改（沪深300路径）", "2015-08 devaluation (CSI 300 path)"),
    "stress.gfc2008": ("2008年金融危机（沪深300路径）", "2008 (CSI 300 path)"),
    "stress.covid2020": (
        "2020年2月3日及3月（沪深300路径）",
        "2020-02-03 and March 2020 (CSI 300 path)",
    ),
    "stress.mc60": ("蒙特卡洛 60 日（GARCH-t）", "Monte Carlo, 60 days, GARCH-t"),
    "suite.reduced": ("精简版", "reduced"),
    "suite.full": ("完整版", "full"),
    "brake_stage.NORMAL": ("正常", "normal"),
    "brake_stage.NO_NEW": ("暂停新增", "no new financing"),
    "brake_stage.LIMIT": ("限制规模", "book capped"),
    "brake_stage.UNWIND": ("有序减仓", "orderly unwind"),
    # errors shown on pages (CrowdLevError.code, and exact messages the pages show)
    "error.wrong username or password": ("用户名或密码错误", "wrong username or password"),
    "error.unauthorized": ("未登录或登录已过期", "not logged in"),
    "error.forbidden": ("无权操作", "forbidden"),
    "error.invalid_input": ("输入有误", "invalid input"),
    "error.not_found": ("未找到", "not found"),
    "error.conflict": ("与当前状态冲突", "conflict"),
    "error.rule_violation": ("违反风控规则", "rule violation"),
    "error.platform_paused": ("平台已暂停", "platform paused"),
    "error.rate_limited": ("请求过于频繁", "rate limited"),
    "error.error": ("操作失败", "failed"),
    "error.invalid_data_file": ("数据文件有误", "invalid data file"),
    "error.out_of_range": ("超出允许范围", "out of range"),
    "error.contract_revert": ("合约拒绝了该操作（违反风控规则）", "the contract refused it"),
    "error.compliance_block": ("合规限制", "blocked by compliance"),
    "error.service_unavailable": ("服务暂不可用", "service unavailable"),
    "error.config_error": ("配置错误", "configuration error"),
    "error.integrity_failure": ("完整性校验失败", "integrity check failed"),
    # the contracts' revert reasons a user can meet, exactly as the contracts give them (a
    # test checks each is one): English keeps the reason itself
    "error.margin: ratio below initial": (
        "买入后担保比例将低于初始保证金线",
        "margin: ratio below initial",
    ),
    "error.margin: leverage above tier": (
        "买入后杠杆将超过所在档位的上限",
        "margin: leverage above tier",
    ),
    "error.margin: insufficient assets": (
        "账户资产不足以支付该笔买入",
        "margin: insufficient assets",
    ),
    "error.margin: single security above 40%": (
        "单只股票将超过账户资产的 40%",
        "margin: single security above 40%",
    ),
    "error.margin: platform exposure above 5%": (
        "平台持有该股票的敞口将超过资金池的 5%",
        "margin: platform exposure above 5%",
    ),
    "error.margin: above liquidity cap": ("超过该股票的流动性上限", "margin: above liquidity cap"),
    "error.margin: account in liquidation": (
        "账户正在强制平仓，暂不能交易或提取",
        "margin: account in liquidation",
    ),
    "error.margin: security not financeable": (
        "该股票不可融资（未上市、新股、ST 或停牌）",
        "margin: security not financeable",
    ),
    "error.margin: quantity not whole lots": (
        "买入数量须为整手（100 股的整数倍）",
        "margin: quantity not whole lots",
    ),
    "error.margin: not enough sellable shares": (
        "可卖股数不足",
        "margin: not enough sellable shares",
    ),
    "error.margin: zero price": ("价格须大于零", "margin: zero price"),
    "error.margin: zero amount": ("金额须大于零", "margin: zero amount"),
    "error.margin: amount too large": ("金额过大", "margin: amount too large"),
    "error.margin: insufficient cash": ("账户现金不足", "margin: insufficient cash"),
    "error.margin: insufficient reserve": ("追保储备金不足", "margin: insufficient reserve"),
    "error.margin: ratio below withdrawal line": (
        "提取后担保比例将低于可提取线",
        "margin: ratio below withdrawal line",
    ),
    "error.margin: still below liquidation line": (
        "担保比例仍低于平仓线",
        "margin: still below liquidation line",
    ),
    "error.margin: order not open": ("该委托已不在进行中", "margin: order not open"),
    "error.margin: no account": ("没有保证金账户", "margin: no account"),
    "error.margin: paused": ("平台已暂停", "margin: paused"),
    "error.margin: caller is not borrower": (
        "仅借款人可进行此操作",
        "margin: caller is not borrower",
    ),
    "error.stressed regime: no new financing": (
        "市场处于压力状态：暂停新增融资（可用现金买入）",
        "stressed regime: no new financing",
    ),
    "error.oracle: price unreliable": (
        "该股票的预言机价格暂不可靠，暂停融资买入",
        "oracle: price unreliable",
    ),
    "error.orderbook: too many open orders": (
        "未完成的委托过多，请等待成交或撤单",
        "orderbook: too many open orders",
    ),
    "error.pool: utilisation above limit": (
        "资金池使用率将超过上限",
        "pool: utilisation above limit",
    ),
    "error.pool: insufficient liquidity": ("资金池可用资金不足", "pool: insufficient liquidity"),
    "error.pool: insufficient shares": ("份额不足", "pool: insufficient shares"),
    "error.pool: epoch not over": ("本期尚未结束", "pool: epoch not over"),
    "error.pool: nothing to withdraw": ("没有可提取的金额", "pool: nothing to withdraw"),
    "error.pool: nothing queued": ("没有排队中的申请", "pool: nothing queued"),
    "error.pool: queue full": ("排队中的申请已满，请稍后再试", "pool: queue full"),
    "error.pool: zero amount": ("金额须大于零", "pool: zero amount"),
    "error.pool: amount too large": ("金额过大", "pool: amount too large"),
    "error.pool: paused": ("平台已暂停", "pool: paused"),
    "error.pool: caller is not investor": ("仅投资者可进行此操作", "pool: caller is not investor"),
    "error.cash: insufficient balance": ("钱包余额不足", "cash: insufficient balance"),
    "error.cash: zero amount": ("金额须大于零", "cash: zero amount"),
    "error.cash: amount too large": ("金额过大", "cash: amount too large"),
    "error.cash: paused": ("平台已暂停", "cash: paused"),
    "error.cash: sender frozen": ("账户已被冻结", "cash: sender frozen"),
    "error.cash: receiver frozen": ("收款账户已被冻结", "cash: receiver frozen"),
    "error.cash: sender not verified": ("账户身份未认证或已过期", "cash: sender not verified"),
    "error.cash: receiver not verified": (
        "收款账户身份未认证或已过期",
        "cash: receiver not verified",
    ),
    # the market's and the platform's rules with figures: the error's details.rule, its
    # figures from the other details (`*_fen` in 元)
    "rule.price_band": (
        "价格 {price_fen} 元不在当日涨跌停范围 {limit_down_fen}–{limit_up_fen} 元内",
        "price {price_fen} is outside the day's band {limit_down_fen}–{limit_up_fen}",
    ),
    "rule.available": (
        "可用余额不足 {amount_fen} 元",
        "less than {amount_fen} available",
    ),
    "rule.price_positive": ("价格须大于零", "the price must be positive"),
    "rule.quantity_positive": ("数量须大于零", "the quantity must be positive"),
    "rule.lot": (
        "买入数量 {quantity} 股须为 {lot} 股的整数倍",
        "buy quantity {quantity} is not a multiple of the {lot}-share lot",
    ),
    "rule.sellable": (
        "卖出数量 {quantity} 股超过可卖数量 {sellable} 股",
        "sell quantity {quantity} exceeds the sellable {sellable}",
    ),
    "rule.sellable_t1": (
        "卖出数量 {quantity} 股超过可卖数量 {sellable} 股（T+1：当日买入，次日可卖）",
        "sell quantity {quantity} exceeds the sellable {sellable} (T+1: bought today sells tomorrow)",
    ),
    "rule.odd_lot": (
        "卖出数量 {quantity} 股含零股；零股只能随全部持仓一次卖出",
        "sell quantity {quantity} has an odd lot; odd lots only sell a whole holding",
    ),
    "rule.halted": ("{code} 于 {date} 停牌", "{code} is halted on {date}"),
    "rule.universe": (
        "{code} 不在平台可融资的股票范围内",
        "{code} is not in the platform's financed universe",
    ),
    "rule.repay_above_debt": (
        "还款 {amount_fen} 元超过负债 {debt_fen} 元",
        "repay {amount_fen} exceeds the debt {debt_fen}",
    ),
}


class Translator:
    """`t(key, **fmt)` for one language; `t.js(keys)` for a page's script."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "zh"
        self.idx = 1 if self.lang == "en" else 0

    def __call__(self, key: str, **fmt: Any) -> str:
        pair = STRINGS.get(key)
        if pair is None:
            log.warning("i18n key missing", extra={"key": key, "lang": self.lang})
            return key
        text = pair[self.idx]
        return text.format(**fmt) if fmt else text

    def has(self, key: str) -> bool:
        return key in STRINGS

    def enum(self, namespace: str, value: Any) -> str:
        """An enum's label: `t('<namespace>.<value>')`."""
        return self(f"{namespace}.{getattr(value, 'value', value)}")

    def js(self, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        return {k: self(k) for k in keys}

    def prefix(self, namespace: str) -> dict[str, str]:
        """Every `<namespace>.x` entry as {x: text} (for a page's script)."""
        n = len(namespace) + 1
        return {k[n:]: v[self.idx] for k, v in STRINGS.items() if k.startswith(namespace + ".")}

    def error(self, code: str, message: str, details: dict[str, Any] | None = None) -> str:
        """An error for a page: the exact message if catalogued (a contract's revert reason),
        else the message itself (en), else the rule it names with its figures
        (`details["rule"]`), else the code's label (zh). base.html's `apiError` does the same
        in the browser."""
        exact = f"error.{message}"
        if exact in STRINGS:
            return self(exact)
        if self.lang == "en":
            return message
        d = details or {}
        rule = f"rule.{d.get('rule')}"
        if rule in STRINGS:
            return _RULE_ARG.sub(lambda m: _rule_arg(m.group(1), d.get(m.group(1))),
                                 STRINGS[rule][self.idx])  # fmt: skip
        return self(f"error.{code}") if f"error.{code}" in STRINGS else self("error.error")


_RULE_ARG = re.compile(r"\{(\w+)\}")


def _rule_arg(name: str, value: Any) -> str:
    """A rule's figure as a page shows it: `*_fen` in 元 with two decimals."""
    if name.endswith("_fen") and isinstance(value, int):
        return format_yuan(value)
    return "" if value is None else str(value)


def translator(lang: str) -> Translator:
    return Translator(lang)


def wan(fen: int, lang: str = "zh") -> str:
    """元 with 万/亿 (zh-CN) or K/M/B (English), two decimals, display only."""
    if lang != "en":
        return format_cn(int(fen))
    yuan = Decimal(int(fen)) / 100
    a = abs(yuan)
    for size, unit in ((Decimal(10**9), "B"), (Decimal(10**6), "M"), (Decimal(10**3), "K")):
        if a >= size:
            v = (yuan / size).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            return f"{v:,} {unit} 元"
    return f"{format_yuan(int(fen))} 元"


def sh_time(iso: str | None, with_date: bool = False) -> str:
    """An ISO instant (UTC if naive) as Asia/Shanghai wall time (HH:MM:SS, or with the date)."""
    if not iso:
        return ""
    try:
        t = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    t = t.astimezone(SHANGHAI)
    return t.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
