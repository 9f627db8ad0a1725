"""Feed AML monitoring from chain events: `CashToken` mints are deposits, burns are
withdrawals, transfers between a customer and a platform contract are subscriptions and
redemption payouts. Addresses are mapped to KYC identities by the caller; events of addresses
without an identity (system actors) are skipped. Event logs carry a block number, not a time:
the caller says when each block was made (`time_of_block`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from crowdleverage.chain.port import EventLog
from crowdleverage.compliance.aml import Channel, Transaction, TxnKind

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
