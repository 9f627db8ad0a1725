"""ISO 20022 camt.053 (BankToCustomerStatement): the custodian's end-of-day account statement.

`write_statement` renders a `Statement` as camt.053.001.08; `read_statement` parses and
validates one, refusing the whole file with a reason when it is malformed or inconsistent:

- structure: Document/BkToCstmrStmt with exactly one Stmt; Id, ElctrncSeqNb, account, one
  opening (OPBD) and one closing (CLBD) booked balance, entries with AcctSvcrRef;
- amounts: CNY only, non-negative, at most two decimals; indicators CRDT/DBIT; status BOOK;
- consistency: opening + Σ credits − Σ debits = closing; the transaction summary (if given)
  matches the entries; each entry's transaction details sum to the entry; AcctSvcrRef unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
NS_FAMILY = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."


@dataclass(frozen=True, slots=True)
class Entry:
    """One booked statement line. `credit` is money in (CRDT)."""

    account_servicer_ref: str  # the bank's unique reference for the line (AcctSvcrRef)
    amount_fen: int
    credit: bool
    booking_date: date
    end_to_end_id: str = ""
    counterparty_name: str = ""
    counterparty_account: str = ""
    virtual_account: str = ""  # our sub-account the payer credited (CdtrAcct), if any
    remittance: str = ""


@dataclass(frozen=True, slots=True)
class Statement:
    statement_id: str
    sequence_nb: int
    account: str
    created_at: datetime
    opening_fen: int  # signed: negative means an overdraft (DBIT balance)
    closing_fen: int
    entries: tuple[Entry, ...] = field(default_factory=tuple)
    servicer_bic: str = "ICBKCNBJXXX"

    @property
    def credits_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if e.credit)

    @property
    def debits_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if not e.credit)


def write_statement(st: Statement) -> bytes:
    doc = etree.Element(f"{{{NS}}}Document", nsmap={None: NS})
    root = sub(doc, NS, "BkToCstmrStmt")
    hdr = sub(root, NS, "GrpHdr")
    sub(hdr, NS, "MsgId", f"MSG-{st.statement_id}")
    sub(hdr, NS, "CreDtTm", st.created_at.isoformat(timespec="seconds"))
    stmt = sub(root, NS, "Stmt")
    sub(stmt, NS, "Id", st.statement_id)
    sub(stmt, NS, "ElctrncSeqNb", str(st.sequence_nb))
    sub(stmt, NS, "CreDtTm", st.created_at.isoformat(timespec="seconds"))
    acct = sub(stmt, NS, "Acct")
    path(acct, NS, "Id/Othr/Id", st.account)
    sub(acct, NS, "Ccy", CCY)
    path(acct, NS, "Svcr/FinInstnId/BICFI", st.servicer_bic)
    day = st.created_at.date().isoformat()
    for code, value in (("OPBD", st.opening_fen), ("CLBD", st.closing_fen)):
        bal = sub(stmt, NS, "Bal")
        path(bal, NS, "Tp/CdOrPrtry/Cd", code)
        sub(bal, NS, "Amt", format_amount(abs(value)), Ccy=CCY)
        sub(bal, NS, "CdtDbtInd", "CRDT" if value >= 0 else "DBIT")
        path(bal, NS, "Dt/Dt", day)
    summ = sub(stmt, NS, "TxsSummry")
    tot = sub(summ, NS, "TtlNtries")
    sub(tot, NS, "NbOfNtries", str(len(st.entries)))
    sub(tot, NS, "Sum", format_amount(st.credits_fen + st.debits_fen))
    for tag, credit in (("TtlCdtNtries", True), ("TtlDbtNtries", False)):
        part = [e for e in st.entries if e.credit is credit]
        el = sub(summ, NS, tag)
        sub(el, NS, "NbOfNtries", str(len(part)))
        sub(el, NS, "Sum", format_amount(sum(e.amount_fen for e in part)))
    for e in st.entries:
        _write_entry(stmt, e)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _write_entry(stmt: etree._Element, e: Entry) -> None:
    ntry = sub(stmt, NS, "Ntry")
    sub(ntry, NS, "Amt", format_amount(e.amount_fen), Ccy=CCY)
    sub(ntry, NS, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
    path(ntry, NS, "Sts/Cd", "BOOK")
    path(ntry, NS, "BookgDt/Dt", e.booking_date.isoformat())
    path(ntry, NS, "ValDt/Dt", e.booking_date.isoformat())
    sub(ntry, NS, "AcctSvcrRef", e.account_servicer_ref)
    fmly = path(ntry, NS, "BkTxCd/Domn")
    sub(fmly, NS, "Cd", "PMNT")
    f = sub(fmly, NS, "Fmly")
    sub(f, NS, "Cd", "RCDT" if e.credit else "ICDT")
    sub(f, NS, "SubFmlyCd", "DMCT")
    tx = path(ntry, NS, "NtryDtls/TxDtls")
    path(tx, NS, "Refs/EndToEndId", e.end_to_end_id or "NOTPROVIDED")
    sub(tx, NS, "Amt", format_amount(e.amount_fen), Ccy=CCY)
    parties = sub(tx, NS, "RltdPties")
    other = "Dbtr" if e.credit else "Cdtr"
    if e.counterparty_name:
        path(parties, NS, f"{other}/Pty/Nm", e.counterparty_name)
    if e.counterparty_account:
        path(parties, NS, f"{other}Acct/Id/Othr/Id", e.counterparty_account)
    if e.virtual_account:
        path(parties, NS, "CdtrAcct/Id/Othr/Id", e.virtual_account)
    if e.remittance:
        path(tx, NS, "RmtInf/Ustrd", e.remittance)


def read_statement(data: bytes, source: str = "<camt.053>") -> Statement:
    """Parse and validate a camt.053 file; raise DataFileError (whole file refused)."""
    root, ns = parse_document(data, source, NS_FAMILY)
    r = Reader(source, ns)
    [bk] = r.all(root, "BkToCstmrStmt") or [None]
    if bk is None:
        raise r.error(root, "BkToCstmrStmt is missing")
    stmts = r.all(bk, "Stmt")
    if len(stmts) != 1:
        raise r.error(bk, f"expected exactly one Stmt, found {len(stmts)}")
    stmt = stmts[0]
    seq_text = r.req(stmt, "ElctrncSeqNb")
    if not seq_text.isdigit():
        raise r.error(stmt, f"ElctrncSeqNb {seq_text!r} is not a number")
    created_text = r.req(stmt, "CreDtTm")
    try:
        created = datetime.fromisoformat(created_text)
    except ValueError as exc:
        raise r.error(stmt, f"CreDtTm {created_text!r} is not a date-time") from exc
    acct = r.one(stmt, "Acct")
    account = r.opt(acct, "Id/Othr/Id") or r.opt(acct, "Id/IBAN")
    if not account:
        raise r.error(acct, "Acct/Id has neither Othr/Id nor IBAN")
    ccy = r.opt(acct, "Ccy")
    if ccy not in (None, CCY):
        raise r.error(acct, f"account currency is {ccy!r}, only {CCY} is accepted")
    balances = _read_balances(r, stmt)
    entries = tuple(_read_entry(r, n) for n in r.all(stmt, "Ntry"))
    refs = [e.account_servicer_ref for e in entries]
    dup = sorted({x for x in refs if refs.count(x) > 1})
    if dup:
        raise r.error(stmt, f"AcctSvcrRef repeated within the statement: {', '.join(dup)}")
    st = Statement(
        statement_id=r.req(stmt, "Id"),
        sequence_nb=int(seq_text),
        account=account,
        created_at=created,
        opening_fen=balances["OPBD"],
        closing_fen=balances["CLBD"],
        entries=entries,
    )
    _check_summary(r, stmt, st)
    if st.opening_fen + st.credits_fen - st.debits_fen != st.closing_fen:
        raise r.error(
            stmt,
            f"balances do not add up: opening {st.opening_fen} + credits {st.credits_fen}"
            f" - debits {st.debits_fen} != closing {st.closing_fen} (fen)",
        )
    return st


def _read_balances(r: Reader, stmt: etree._Element) -> dict[str, int]:
    out: dict[str, int] = {}
    for bal in r.all(stmt, "Bal"):
        code = r.req(bal, "Tp/CdOrPrtry/Cd")
        if code not in ("OPBD", "CLBD"):
            continue  # other balance types (e.g. CLAV) are informative
        if code in out:
            raise r.error(bal, f"balance {code} given twice")
        amount = r.amount_fen(bal, "Amt")
        ind = r.req(bal, "CdtDbtInd")
        if ind not in ("CRDT", "DBIT"):
            raise r.error(bal, f"CdtDbtInd {ind!r} is neither CRDT nor DBIT")
        out[code] = amount if ind == "CRDT" else -amount
    for code in ("OPBD", "CLBD"):
        if code not in out:
            raise r.error(stmt, f"the {code} balance is missing")
    return out


def _read_entry(r: Reader, n: etree._Element) -> Entry:
    amount = r.amount_fen(n, "Amt")
    if amount == 0:
        raise r.error(n, "entry amount is zero")
    ind = r.req(n, "CdtDbtInd")
    if ind not in ("CRDT", "DBIT"):
        raise r.error(n, f"CdtDbtInd {ind!r} is neither CRDT nor DBIT")
    status = r.opt(n, "Sts/Cd") or r.opt(n, "Sts")
    if status != "BOOK":
        raise r.error(n, f"entry status is {status!r}; a statement holds booked (BOOK) entries")
    txs = r.all(n, "NtryDtls/TxDtls")
    if len(txs) > 1:
        raise r.error(n, "batched entries (several TxDtls) are not supported")
    tx = txs[0] if txs else None
    credit = ind == "CRDT"
    if tx is not None and r.opt(tx, "Amt") is not None and r.amount_fen(tx, "Amt") != amount:
        raise r.error(tx, "transaction amount differs from its entry amount")
    other = "Dbtr" if credit else "Cdtr"

    def txt(p: str) -> str:
        return (r.opt(tx, p) or "") if tx is not None else ""

    e2e = txt("Refs/EndToEndId")
    return Entry(
        account_servicer_ref=r.req(n, "AcctSvcrRef"),
        amount_fen=amount,
        credit=credit,
        booking_date=r.date(n, "BookgDt/Dt"),
        end_to_end_id="" if e2e == "NOTPROVIDED" else e2e,
        counterparty_name=txt(f"RltdPties/{other}/Pty/Nm") or txt(f"RltdPties/{other}/Nm"),
        counterparty_account=txt(f"RltdPties/{other}Acct/Id/Othr/Id"),
        virtual_account=txt("RltdPties/CdtrAcct/Id/Othr/Id") if credit else "",
        remittance=txt("RmtInf/Ustrd"),
    )


def _check_summary(r: Reader, stmt: etree._Element, st: Statement) -> None:
    summ = r.all(stmt, "TxsSummry")
    if not summ:
        return
    checks = (
        ("TtlNtries", st.entries, st.credits_fen + st.debits_fen),
        ("TtlCdtNtries", [e for e in st.entries if e.credit], st.credits_fen),
        ("TtlDbtNtries", [e for e in st.entries if not e.credit], st.debits_fen),
    )
    for tag, entries, total in checks:
        for el in r.all(summ[0], tag):
            nb = r.opt(el, "NbOfNtries")
            if nb is not None and nb != str(len(entries)):
                raise r.error(el, f"{tag}/NbOfNtries says {nb}, the statement has {len(entries)}")
            s = r.opt(el, "Sum")
            if s is not None and s != format_amount(total):
                raise r.error(el, f"{tag}/Sum says {s}, the entries sum to {format_amount(total)}")
