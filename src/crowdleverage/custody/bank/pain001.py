"""ISO 20022 pain.001 (CustomerCreditTransferInitiation): the payment file the platform sends
to the custodian bank for payouts (redemptions, withdrawals). Written as pain.001.001.09; the
reader (used by the simulated bank) checks NbOfTxs and CtrlSum and refuses the whole file on
any inconsistency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

from crowdleverage.custody.bank.iso20022 import (
    CCY,
    Reader,
    format_amount,
    parse_document,
    path,
    sub,
)

NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
NS_FAMILY = "urn:iso:std:iso:20022:tech:xsd:pain.001.001."


@dataclass(frozen=True, slots=True)
class Payment:
    end_to_end_id: str  # our payout's ledger transfer id (hex); comes back in camt.053
    amount_fen: int
    creditor_name: str
    creditor_account: str
    remittance: str = ""


@dataclass(frozen=True, slots=True)
class PaymentFile:
    message_id: str
    created_at: datetime
    execution_date: date
    debtor_name: str
    debtor_account: str
    payments: tuple[Payment, ...]
    debtor_bic: str = "ICBKCNBJXXX"

    @property
    def control_sum_fen(self) -> int:
        return sum(p.amount_fen for p in self.payments)


def write_payment_file(pf: PaymentFile) -> bytes:
    assert pf.payments, "dev: a payment file carries at least one payment"
    doc = etree.Element(f"{{{NS}}}Document", nsmap={None: NS})
    root = sub(doc, NS, "CstmrCdtTrfInitn")
    hdr = sub(root, NS, "GrpHdr")
    sub(hdr, NS, "MsgId", pf.message_id)
    sub(hdr, NS, "CreDtTm", pf.created_at.isoformat(timespec="seconds"))
    sub(hdr, NS, "NbOfTxs", str(len(pf.payments)))
    sub(hdr, NS, "CtrlSum", format_amount(pf.control_sum_fen))
    path(hdr, NS, "InitgPty/Nm", pf.debtor_name)
    inf = sub(root, NS, "PmtInf")
    sub(inf, NS, "PmtInfId", f"{pf.message_id}-1")
    sub(inf, NS, "PmtMtd", "TRF")
    sub(inf, NS, "NbOfTxs", str(len(pf.payments)))
    sub(inf, NS, "CtrlSum", format_amount(pf.control_sum_fen))
    path(inf, NS, "ReqdExctnDt/Dt", pf.execution_date.isoformat())
    path(inf, NS, "Dbtr/Nm", pf.debtor_name)
    path(inf, NS, "DbtrAcct/Id/Othr/Id", pf.debtor_account)
    path(inf, NS, "DbtrAgt/FinInstnId/BICFI", pf.debtor_bic)
    for p in pf.payments:
        tx = sub(inf, NS, "CdtTrfTxInf")
        path(tx, NS, "PmtId/EndToEndId", p.end_to_end_id)
        sub(path(tx, NS, "Amt"), NS, "InstdAmt", format_amount(p.amount_fen), Ccy=CCY)
        path(tx, NS, "Cdtr/Nm", p.creditor_name)
        path(tx, NS, "CdtrAcct/Id/Othr/Id", p.creditor_account)
        if p.remittance:
            path(tx, NS, "RmtInf/Ustrd", p.remittance)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def read_payment_file(data: bytes, source: str = "<pain.001>") -> PaymentFile:
    root, ns = parse_document(data, source, NS_FAMILY)
    r = Reader(source, ns)
    init = r.one(root, "CstmrCdtTrfInitn")
    hdr = r.one(init, "GrpHdr")
    infs = r.all(init, "PmtInf")
    if len(infs) != 1:
        raise r.error(init, f"expected exactly one PmtInf, found {len(infs)}")
    inf = infs[0]
    payments: list[Payment] = []
    for tx in r.all(inf, "CdtTrfTxInf"):
        amount = r.amount_fen(tx, "Amt/InstdAmt")
        if amount == 0:
            raise r.error(tx, "payment amount is zero")
        payments.append(
            Payment(
                end_to_end_id=r.req(tx, "PmtId/EndToEndId"),
                amount_fen=amount,
                creditor_name=r.req(tx, "Cdtr/Nm"),
                creditor_account=r.req(tx, "CdtrAcct/Id/Othr/Id"),
                remittance=r.opt(tx, "RmtInf/Ustrd") or "",
            )
        )
    if not payments:
        raise r.error(inf, "no CdtTrfTxInf in the payment file")
    ids = [p.end_to_end_id for p in payments]
    if len(set(ids)) != len(ids):
        raise r.error(inf, "EndToEndId repeated within the file")
    total = sum(p.amount_fen for p in payments)
    for el in (hdr, inf):
        nb = r.req(el, "NbOfTxs")
        if nb != str(len(payments)):
            raise r.error(el, f"NbOfTxs says {nb}, the file has {len(payments)} payments")
        ctrl = r.opt(el, "CtrlSum")
        if ctrl is not None and ctrl != format_amount(total):
            raise r.error(el, f"CtrlSum says {ctrl}, the payments sum to {format_amount(total)}")
    created_text = r.req(hdr, "CreDtTm")
    try:
        created = datetime.fromisoformat(created_text)
    except ValueError as exc:
        raise r.error(hdr, f"CreDtTm {created_text!r} is not a date-time") from exc
    return PaymentFile(
        message_id=r.req(hdr, "MsgId"),
        created_at=created,
        execution_date=r.date(inf, "ReqdExctnDt/Dt"),
        debtor_name=r.req(inf, "Dbtr/Nm"),
        debtor_account=r.req(inf, "DbtrAcct/Id/Othr/Id"),
        payments=tuple(payments),
    )
