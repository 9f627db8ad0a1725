"""Strings of the statements, confirmations, notifications, attestations and operator views
(issue 16 items 3, 4, 7, 8), registered into the web catalogue (`web.i18n.STRINGS`) on import:
one catalogue for every page, PDF, CSV and mail; zh-CN first, English second."""

from __future__ import annotations

from crowdleverage.web import i18n

REPORT_STRINGS: dict[str, tuple[str, str]] = {
    # statements and confirmations
    "statements": ("对账单", "Statements"),
    "statement": ("对账单", "Statement"),
    "statement_title": ("客户对账单", "Customer statement"),
    "period": ("期间", "Period"),
    "month": ("月份", "Month"),
    "from": ("起始日", "From"),
    "to": ("截止日", "To"),
    "customer": ("客户", "Customer"),
    "opening_wallet": ("期初钱包余额", "Opening wallet balance"),
    "closing_wallet": ("期末钱包余额", "Closing wallet balance"),
    "wallet_change": ("钱包变动合计", "Net wallet movement"),
    "lines_total": ("流水金额合计", "Total of the lines"),
    "ledger_available": ("托管账本可用余额", "Custody ledger available balance"),
    "ledger_pending_out": ("托管账本在途出金", "Custody ledger payouts in transit"),
    "totals_by_kind": ("按类型汇总", "Totals by kind"),
    "count": ("笔数", "Count"),
    "wallet_effect": ("钱包影响(元)", "Wallet effect (元)"),
    "download_csv": ("下载CSV", "Download CSV"),
    "download_pdf": ("下载PDF", "Download PDF"),
    "confirmations": ("交易确认书", "Confirmations"),
    "confirmation": ("确认书", "Confirmation"),
    "confirmation_no": ("确认书编号", "Confirmation no."),
    "details": ("明细", "Details"),
    "generated_at": ("生成时间", "Generated at"),
    "statement_note": (
        "金额单位为元，精确到分；钱包余额以托管银行账本为准。",
        "Amounts in 元 to the fen; the custody bank's ledger is the book of record.",
    ),
    "show": ("查询", "Show"),
    # statement line and confirmation kinds
    "kind_deposit": ("入金", "Deposit"),
    "kind_withdrawal": ("出金", "Withdrawal"),
    "kind_subscription_requested": ("申购申请", "Subscription requested"),
    "kind_redemption_requested": ("赎回申请", "Redemption requested"),
    "kind_subscribed": ("申购确认", "Subscription confirmed"),
    "kind_redeemed": ("赎回到账", "Redemption paid"),
    "kind_margin_deposit": ("转入保证金", "Margin deposit"),
    "kind_reserve_deposit": ("转入补仓准备金", "Reserve deposit"),
    "kind_account_withdrawal": ("保证金转出", "Margin withdrawal"),
    "kind_repayment": ("还款", "Repayment"),
    "kind_buy": ("买入成交", "Buy fill"),
    "kind_sell": ("卖出成交", "Sell fill"),
    "kind_liquidation_sell": ("强制平仓成交", "Liquidation fill"),
    "kind_auto_top_up": ("自动补仓", "Automatic top-up"),
    "kind_order": ("委托", "Order"),
    "kind_liquidation": ("强制平仓", "Liquidation"),
    # notifications
    "notifications": ("消息中心", "Notifications"),
    "notification_prefs": ("通知设置", "Notification settings"),
    "language": ("语言", "Language"),
    "email": ("电子邮箱", "Email"),
    "in_app": ("站内信", "In-app"),
    "by_email": ("邮件", "Email"),
    "save": ("保存", "Save"),
    "saved": ("已保存", "Saved"),
    "mark_read": ("全部标为已读", "Mark all read"),
    "unread": ("未读", "Unread"),
    "no_notifications": ("暂无消息", "No notifications"),
    "mailbox": ("演示邮箱（SMTP收件）", "Demo mailbox (SMTP sink)"),
    "no_mails": ("暂无邮件", "No mails"),
    "mail_to": ("收件人", "To"),
    "mail_subject": ("主题", "Subject"),
    "ev_margin_warning": ("维持担保比例预警", "Margin warning"),
    "ev_top_up": ("自动补仓", "Automatic top-up"),
    "ev_liquidation_started": ("强制平仓开始", "Liquidation started"),
    "ev_liquidation_ended": ("强制平仓结束", "Liquidation ended"),
    "ev_fill": ("委托成交", "Order filled"),
    "ev_payout": ("资金到账/出金", "Payout"),
    "msg_margin_warning": (
        "账户{account_id}维持担保比例降至{ratio}，已低于预警线，请追加保证金。",
        "Account {account_id}: margin ratio fell to {ratio}, below the warning line; please"
        " add margin.",
    ),
    "msg_top_up": (
        "账户{account_id}已从补仓准备金自动补入{amount}元。",
        "Account {account_id}: {amount} 元 moved from the reserve into the margin.",
    ),
    "msg_liquidation_started": (
        "账户{account_id}维持担保比例{ratio}，低于平仓线，强制平仓已开始。",
        "Account {account_id}: margin ratio {ratio} is below the liquidation line; liquidation"
        " has started.",
    ),
    "msg_liquidation_ended": (
        "账户{account_id}强制平仓已结束，穿仓金额{amount}元。",
        "Account {account_id}: liquidation ended, shortfall {amount} 元.",
    ),
    "msg_fill": (
        "{side}：{code} {quantity}股，成交价{price}元，金额{amount}元。",
        "{side} {code} {quantity} shares at {price} 元, amount {amount} 元.",
    ),
    "msg_payout": ("{what}{amount}元。", "{what}: {amount} 元."),
    # attestations
    "attestations": ("第三方审计报告", "Third-party audit attestations"),
    "attestation": ("审计报告", "Attestation"),
    "auditor_key": ("审计方公钥", "Auditor public key"),
    "signature": ("签名", "Signature"),
    "verify_in_browser": ("在浏览器中验证签名", "Verify signatures in the browser"),
    "sig_valid": ("签名有效", "Signature valid"),
    "sig_invalid": ("签名无效", "Signature INVALID"),
    "sig_checking": ("验证中…", "Checking…"),
    "sig_unsupported": ("浏览器不支持Ed25519验证", "This browser cannot verify Ed25519"),
    "no_attestations": ("暂无审计报告", "No attestations yet"),
    "report": ("报告", "Report"),
    "contracts_match": ("合约代码与源码一致", "Contract code matches the source"),
    "contracts_mismatch": ("合约代码与源码不一致", "Contract code differs from the source"),
    "signed_at": ("签署时间", "Signed at"),
    "stress_date": ("压力测试日期", "Stress test date"),
    # operator
    "operator": ("运营", "Operator"),
    "drill_down": ("账户明细", "Account drill-down"),
    "owner": ("账户所有人", "Owner"),
    "stuck_liquidations": ("等待中的强制平仓", "Waiting liquidations"),
    "since": ("开始于", "Since"),
    "waits_for": ("等待", "Waiting for"),
    "reason_halted": ("停牌", "halted"),
    "reason_sealed": ("跌停封板", "sealed limit-down"),
    "reason_t1": ("T+1锁定", "T+1 locked"),
    "eod_report": ("日终报告", "End-of-day report"),
    "pause_platform": ("暂停平台", "Pause the platform"),
    "resume_platform": ("恢复平台", "Resume the platform"),
    "orders": ("委托", "Orders"),
    "no_stuck": ("没有等待中的强制平仓", "No liquidation is waiting"),
    "interest": ("利息", "Interest"),
    "platform_fee": ("平台服务费", "Platform fee"),
    "new_orders": ("当日委托", "Orders today"),
    "fills": ("成交", "Fills"),
    "deposits": ("入金", "Deposits"),
    "withdrawals": ("出金", "Withdrawals"),
    "notifications_sent": ("已发通知", "Notifications sent"),
    "healthy": ("正常", "Healthy"),
    "order_status_open": ("未成交", "open"),
    "order_status_partially_filled": ("部分成交", "partially filled"),
    "order_status_filled": ("已成交", "filled"),
    "order_status_expired": ("已失效", "expired"),
    # confirmation and statement details
    "detail_reference": ("银行流水号", "Bank reference"),
    "detail_account_id": ("账户", "Account"),
    "detail_code": ("证券代码", "Code"),
    "detail_quantity": ("数量", "Quantity"),
    "detail_price": ("价格", "Price"),
    "detail_order_id": ("委托号", "Order no."),
    "detail_tranche": ("分级", "Tranche"),
    "detail_units": ("份额", "Units"),
    "detail_paid": ("金额", "Amount"),
    "detail_moved": ("划转金额", "Moved"),
    "detail_side": ("方向", "Side"),
    "detail_limit_price": ("委托价", "Limit price"),
    "detail_filled_quantity": ("成交数量", "Filled quantity"),
    "detail_fees": ("费用", "Fees"),
    "detail_status": ("状态", "Status"),
}

i18n.STRINGS.update({k: v for k, v in REPORT_STRINGS.items() if k not in i18n.STRINGS})


def tr(lang: str, key: str, **params: object) -> str:
    """The catalogue string `key` in `lang` ("zh" or "en"), formatted with `params`."""
    pair = i18n.STRINGS.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**params) if params else text


def kind_label(lang: str, kind: str) -> str:
    return tr(lang, f"kind_{kind}") if f"kind_{kind}" in i18n.STRINGS else kind


def detail_label(lang: str, key: str) -> str:
    """A confirmation detail's name (`price_fen` → 价格)."""
    base = key[:-4] if key.endswith("_fen") else key
    return tr(lang, f"detail_{base}") if f"detail_{base}" in i18n.STRINGS else key


def detail_value(lang: str, key: str, value: object) -> str:
    """A detail's value with its enum words translated (side, tranche, order status)."""
    if key == "status" and f"order_status_{value}" in i18n.STRINGS:
        return tr(lang, f"order_status_{value}")
    if isinstance(value, str) and key in ("side", "tranche") and value in i18n.STRINGS:
        return tr(lang, value)
    return str(value)
