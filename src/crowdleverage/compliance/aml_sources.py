"""Feed AML monitoring from the two books of record.

- Chain events: `CashToken` mints are deposits, burns are withdrawals, transfers between a
  customer and a platform contract are subscriptions and redemption payouts. Addresses map to
  KYC identities (caller's mapping); events of other addresses (system actors) are skipped.
  Event logs carry a block number, not a time: the caller says when each block was made.
- The custodian's camt.053 bank statement: credit lines are deposits and carry the payer's name
  and account (the third-party-payer rule needs them), debit lines are payouts. Lines map to
  customers by the virtual sub-account the payer credited (payouts by the payee's registered
  account). Statement lines have a booking date only; they are placed at midnight
  Asia/Shanghai of that date.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, time, timedelta, timezone

from crowdleverage.chain.port import EventLog
from crowdleverage.compliance.aml import Channel, Transaction, TxnKind
from crowdleverage.compliance.kyc import sha256_text
from crowdleverage.custody.bank.camt053 import Statement

_SHANGHAI = timezone(timedelta(hours=8))

_ZERO = "0x" + "00" * 20


def transactions_from_cash_events(
    events: Iterable[EventLog],
    identity_of: Mapping[str, str],
    platform_addresses: Iterable[str],
    time_of_block: Callable[[int], datetime],
) -> list[Transaction]:
    ids = {a.lower(): i for a, i in identity_of.items()}
    platform = {a.lower() for a in platform_addresses}
    out: list[Transaction] = []
    for ev in events:
        if ev.contract != "CashToken":
            continue
        args = {k: (v.lower() if isinstance(v, str) else v) for k, v in ev.args.items()}
        txn_id = f"chain:{ev.tx_hash}:{ev.seq}"
        at = time_of_block(ev.block)
        if ev.event == "Minted" and args["to"] in ids:
            out.append(
                Transaction(txn_id, ids[args["to"]], TxnKind.DEPOSIT, int(args["amount_fen"]), at,
                            Channel.TRANSFER, source="chain")
            )  # fmt: skip
        elif ev.event == "Burned" and args["holder"] in ids:
            out.append(
                Transaction(txn_id, ids[args["holder"]], TxnKind.WITHDRAWAL,
                            int(args["amount_fen"]), at, Channel.TRANSFER, source="chain")
            )  # fmt: skip
        elif ev.event == "Transfer":
            sender, receiver = _transfer_parties(args)
            if _ZERO in (sender, receiver):
                continue  # the Transfer twin of a mint or burn
            if sender in ids and receiver in platform:
                kind, who = TxnKind.SUBSCRIBE, ids[sender]
            elif sender in platform and receiver in ids:
                kind, who = TxnKind.REDEEM, ids[receiver]
            else:
                continue
            amount = int(args.get("amount", args.get("value", 0)))
            if amount > 0:
                out.append(Transaction(txn_id, who, kind, amount, at, source="chain"))
    return out


def _transfer_parties(args: Mapping[str, object]) -> tuple[str, str]:
    sender = args.get("sender", args.get("owner", args.get("from", "")))
    receiver = args.get("receiver", args.get("to", ""))
    return str(sender), str(receiver)


def transactions_from_statement(
    statement: Statement,
    identity_of_virtual_account: Mapping[str, str],
    identity_of_account_sha256: Mapping[str, str] | None = None,
) -> list[Transaction]:
    """Credit lines map to a customer by the virtual sub-account credited; debit lines (payouts
    carry no virtual account) by the payee account, the customer's registered card."""
    out: list[Transaction] = []
    by_card = identity_of_account_sha256 or {}
    for e in statement.entries:
        digits = re.sub(r"\D", "", e.counterparty_account)
        ident = identity_of_virtual_account.get(e.virtual_account) if e.virtual_account else None
        if ident is None and not e.credit and digits:
            ident = by_card.get(sha256_text(digits))
        if ident is None or e.amount_fen <= 0:
            continue
        out.append(
            Transaction(
                f"bank:{statement.account}:{e.account_servicer_ref}",
                ident,
                TxnKind.DEPOSIT if e.credit else TxnKind.WITHDRAWAL,
                e.amount_fen,
                datetime.combine(e.booking_date, time(0, 0), tzinfo=_SHANGHAI),
                Channel.TRANSFER,
                payer_name=(e.counterparty_name or None) if e.credit else None,
                payer_account_sha256=sha256_text(digits) if e.credit and digits else None,
                source="custody",
            )
        )
    return out
