"""Small helpers shared by the camt.053 and pain.001 readers and writers (lxml).

Parsing is defensive: no DTDs, no entity expansion, no network; a file with a DOCTYPE is
refused outright. Every problem becomes a DataFileError naming the file, line and reason, and
nothing of the file is used.
"""

from __future__ import annotations

import re
from datetime import date

from lxml import etree

from crowdleverage.domain.errors import DataFileError

CCY = "CNY"
_AMOUNT_RE = re.compile(r"^\d{1,15}(\.\d{1,2})?$")

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, dtd_validation=False, load_dtd=False, huge_tree=False
)


def parse_document(data: bytes, source: str, ns_prefix: str) -> tuple[etree._Element, str]:
    """Parse `data`, check the root is an ISO 20022 Document of the family `ns_prefix`
    (e.g. 'urn:iso:std:iso:20022:tech:xsd:camt.053.001.'); return (root, namespace)."""
    if not data.strip():
        raise DataFileError(source, None, "file is empty")
    try:
        tree = etree.fromstring(data, _PARSER).getroottree()
    except etree.XMLSyntaxError as exc:
        raise DataFileError(source, exc.lineno, f"not well-formed XML: {exc.msg}") from exc
    if tree.docinfo.doctype:
        raise DataFileError(source, 1, "a DOCTYPE is not allowed in ISO 20022 files")
    root = tree.getroot()
    qn = etree.QName(root)
    if qn.localname != "Document" or not (qn.namespace or "").startswith(ns_prefix):
        raise DataFileError(
            source, root.sourceline, f"root is {root.tag}, expected a Document in {ns_prefix}*"
        )
    return root, qn.namespace or ""


class Reader:
    """Finds required and optional children by ISO 20022 path ("Acct/Id/Othr/Id")."""

    def __init__(self, source: str, ns: str) -> None:
        self.source, self.ns = source, ns

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{p}" for p in path.split("/"))

    def all(self, el: etree._Element, path: str) -> list[etree._Element]:
        return list(el.iterfind(self._path(path)))

    def opt(self, el: etree._Element, path: str) -> str | None:
        found = el.find(self._path(path))
        if found is None:
            return None
        return (found.text or "").strip()

    def req(self, el: etree._Element, path: str) -> str:
        found = el.find(self._path(path))
        if found is None or not (found.text or "").strip():
            raise self.error(el, f"{etree.QName(el).localname}/{path} is missing")
        return (found.text or "").strip()

    def one(self, el: etree._Element, path: str) -> etree._Element:
        found = el.find(self._path(path))
        if found is None:
            raise self.error(el, f"{etree.QName(el).localname}/{path} is missing")
        return found

    def amount_fen(self, el: etree._Element, path: str) -> int:
        amt = self.one(el, path)
        ccy = amt.get("Ccy")
        if ccy != CCY:
            raise self.error(amt, f"amount currency is {ccy!r}, only {CCY} is accepted")
        text = (amt.text or "").strip()
        if not _AMOUNT_RE.match(text):
            raise self.error(amt, f"amount {text!r} is not a non-negative amount with ≤ 2 decimals")
        whole, _, frac = text.partition(".")
        return int(whole) * 100 + int(frac.ljust(2, "0") or 0)

    def date(self, el: etree._Element, path: str) -> date:
        text = self.req(el, path)
        try:
            return date.fromisoformat(text[:10])
        except ValueError as exc:
            raise self.error(el, f"{path} {text!r} is not a date") from exc

    def error(self, el: etree._Element, reason: str) -> DataFileError:
        return DataFileError(self.source, el.sourceline, reason)


def format_amount(amount_fen: int) -> str:
    """Exact decimal text in 元 for ISO 20022 amounts."""
    assert amount_fen >= 0, "dev: ISO 20022 amounts are non-negative"
    return f"{amount_fen // 100}.{amount_fen % 100:02d}"


def sub(
    parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrs: str
) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def path(parent: etree._Element, ns: str, tags: str, text: str | None = None) -> etree._Element:
    """Create the chain "A/B/C" under parent; the last element gets `text`."""
    el = parent
    for tag in tags.split("/"):
        el = sub(el, ns, tag)
    if text is not None:
        el.text = text
    return el
