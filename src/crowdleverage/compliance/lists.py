"""Sanctions list loaders for the formats the lists are published in.

- UN Security Council consolidated list, official XML (`CONSOLIDATED_LIST`, sc-sanctions.xsd);
- OFAC SDN.CSV (no header; ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type,
  Tonnage, GRT, Vess_flag, Vess_owner, Remarks; "-0- " means empty; aliases and dates of birth
  are in the Remarks: "DOB 10 Mar 1957; a.k.a. 'X'; ...");
- FollowTheMoney entities as JSON lines (OpenSanctions exports).

A malformed file is a `DataFileError` naming the file, the line and the reason; nothing of it is
loaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from lxml import etree

from crowdleverage.domain.errors import DataFileError

ListFormat = Literal["un_xml", "ofac_sdn_csv", "ftm_json"]
EntryKind = Literal["person", "entity", "vessel", "aircraft", "other"]


NameQuality = Literal["primary", "strong", "weak", "original_script"]


@dataclass(frozen=True, slots=True)
class ListName:
    name: str
    quality: NameQuality


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A date of birth as lists give it: an exact day, a year, or a range of years."""

    exact: date | None = None
    year_from: int | None = None
    year_to: int | None = None

    def as_text(self) -> str:
        if self.exact is not None:
            return self.exact.isoformat()
        if self.year_from == self.year_to:
            return str(self.year_from)
        return f"{self.year_from}-{self.year_to}"


@dataclass(frozen=True, slots=True)
class ListEntry:
    list_id: str  # "un", "ofac_sdn", "opensanctions"
    entry_id: str  # the list's own id (UN DATAID, OFAC ent_num, FtM id)
    kind: EntryKind
    names: tuple[ListName, ...]
    birth_dates: tuple[BirthDate, ...] = ()
    programs: tuple[str, ...] = ()
    reference: str = ""  # human reference, e.g. UN "QDi.268"

    @property
    def primary_name(self) -> str:
        return self.names[0].name


@dataclass(frozen=True, slots=True)
class LoadedList:
    list_id: str
    fmt: ListFormat
    version: str  # list date when published, else the file's sha256 prefix
    sha256: str
    entries: tuple[ListEntry, ...] = field(repr=False)


def detect_format(path: Path, head: bytes) -> ListFormat:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<") and b"CONSOLIDATED_LIST" in head:
        return "un_xml"
    if text.startswith(b"{"):
        return "ftm_json"
    if path.suffix.lower() == ".csv" or re.match(rb"^\d+,", text):
        return "ofac_sdn_csv"
    raise DataFileError(str(path), None, "unknown list format (expected UN XML, SDN.CSV, FtM JSON)")


def load_list_file(path: Path, fmt: ListFormat | None = None) -> LoadedList:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFileError(str(path), None, f"cannot read: {exc.strerror}") from exc
    if not data.strip():
        raise DataFileError(str(path), None, "file is empty")
    fmt = fmt or detect_format(path, data[:4096])
    sha = hashlib.sha256(data).hexdigest()
    if fmt == "un_xml":
        version, entries = _parse_un_xml(path, data)
        list_id = "un"
    elif fmt == "ofac_sdn_csv":
        version, entries = "", _parse_sdn_csv(path, data)
        list_id = "ofac_sdn"
    else:
        version, entries = "", _parse_ftm(path, data)
        list_id = "opensanctions"
    if not entries:
        raise DataFileError(str(path), None, "no entries found")
    return LoadedList(list_id, fmt, version or sha[:12], sha, tuple(entries))


# ── UN consolidated XML ─────────────────────────────────────────────────────────────────────


def _txt(el: etree._Element | None) -> str:
    if el is None or el.text is None:
        return ""
    return " ".join(el.text.split())


def _parse_un_xml(path: Path, data: bytes) -> tuple[str, list[ListEntry]]:
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise DataFileError(str(path), exc.lineno, f"invalid XML: {exc.msg}") from exc
    if root.tag != "CONSOLIDATED_LIST":
        raise DataFileError(str(path), None, f"root element is {root.tag}, not CONSOLIDATED_LIST")
    version = (root.get("dateGenerated") or "")[:10]
    entries: list[ListEntry] = []
    un_kinds: tuple[tuple[str, EntryKind], ...] = (("INDIVIDUAL", "person"), ("ENTITY", "entity"))
    for tag, kind in un_kinds:
        for el in root.iter(tag):
            entries.append(_un_entry(path, el, kind))
    return version, entries


def _un_entry(path: Path, el: etree._Element, kind: EntryKind) -> ListEntry:
    dataid = _txt(el.find("DATAID"))
    if not dataid:
        raise DataFileError(str(path), el.sourceline, f"{el.tag} without DATAID")
    parts = [_txt(el.find(t)) for t in ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")]
    primary = " ".join(p for p in parts if p)
    if not primary:
        raise DataFileError(str(path), el.sourceline, f"{el.tag} {dataid} has no name")
    names = [ListName(primary, "primary")]
    for alias in el.iter("INDIVIDUAL_ALIAS", "ENTITY_ALIAS"):
        name = _txt(alias.find("ALIAS_NAME"))
        if name:
            weak = _txt(alias.find("QUALITY")).lower() == "low"
            names.append(ListName(name, "weak" if weak else "strong"))
    original = _txt(el.find("NAME_ORIGINAL_SCRIPT"))
    if original:
        names.append(ListName(original, "original_script"))
    dobs: list[BirthDate] = []
    for dob in el.iter("INDIVIDUAL_DATE_OF_BIRTH"):
        bd = _un_dob(dob)
        if bd is not None:
            dobs.append(bd)
    programs = (_txt(el.find("UN_LIST_TYPE")),)
    return ListEntry(
        "un", dataid, kind, tuple(names), tuple(dobs), programs, _txt(el.find("REFERENCE_NUMBER"))
    )


def _un_dob(el: etree._Element) -> BirthDate | None:
    day = _txt(el.find("DATE"))
    if day:
        try:
            return BirthDate(exact=date.fromisoformat(day[:10]))
        except ValueError:
            pass
    year = _txt(el.find("YEAR"))
    if year.isdigit():
        return BirthDate(year_from=int(year), year_to=int(year))
    y0, y1 = _txt(el.find("FROM_YEAR")), _txt(el.find("TO_YEAR"))
    if y0.isdigit() and y1.isdigit():
        return BirthDate(year_from=int(y0), year_to=int(y1))
    return None


# ── OFAC SDN.CSV ────────────────────────────────────────────────────────────────────────────

_SDN_COLUMNS = 12
_SDN_EMPTY = "-0-"
_SDN_TYPES: dict[str, EntryKind] = {
    "individual": "person",
    "": "entity",
    "vessel": "vessel",
    "aircraft": "aircraft",
}
_AKA_RE = re.compile(r"\b([af])\.k\.a\.,?\s*'([^']+)'", re.IGNORECASE)
_DOB_RE = re.compile(r"\bDOB\s+([^;.]+)")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def _sdn_field(value: str) -> str:
    v = value.strip()
    return "" if v == _SDN_EMPTY else v


def _sdn_name(raw: str, kind: EntryKind) -> str:
    # Individuals are written "LAST, First Middle"; put the given names first.
    if kind == "person" and "," in raw:
        last, _, first = raw.partition(",")
        return f"{first.strip()} {last.strip()}".strip()
    return raw


def _parse_sdn_dob(text: str) -> list[BirthDate]:
    out: list[BirthDate] = []
    for piece in re.split(r"\s*(?:;|,)?\s*\balt\.\s*", text.strip()):
        piece = piece.strip().rstrip(";,.")
        m = re.fullmatch(r"(\d{1,2}) ([A-Za-z]{3}) (\d{4})", piece)
        if m and m[2].lower() in _MONTHS:
            try:
                out.append(BirthDate(exact=date(int(m[3]), _MONTHS[m[2].lower()], int(m[1]))))
            except ValueError:
                continue
            continue
        m = re.fullmatch(r"(?:circa )?(\d{4})(?: to (\d{4}))?", piece)
        if m:
            out.append(BirthDate(year_from=int(m[1]), year_to=int(m[2] or m[1])))
    return out


def _parse_sdn_csv(path: Path, data: bytes) -> list[ListEntry]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # the published file is Windows-1252/latin-1
    entries: list[ListEntry] = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].strip() == "\x1a":
            continue  # blank lines and the DOS end-of-file byte the published file ends with
        if len(row) != _SDN_COLUMNS:
            raise DataFileError(str(path), line, f"expected {_SDN_COLUMNS} columns, got {len(row)}")
        ent_num, name_raw, sdn_type = row[0].strip(), _sdn_field(row[1]), _sdn_field(row[2])
        if not ent_num.isdigit():
            raise DataFileError(str(path), line, f"ent_num {ent_num!r} is not a number")
        if not name_raw:
            raise DataFileError(str(path), line, "SDN_Name is empty")
        kind = _SDN_TYPES.get(sdn_type.lower())
        if kind is None:
            raise DataFileError(str(path), line, f"unknown SDN_Type {sdn_type!r}")
        remarks = _sdn_field(row[11])
        names = [ListName(_sdn_name(name_raw, kind), "primary")]
        for _aka_or_fka, alias in _AKA_RE.findall(remarks):
            names.append(ListName(_sdn_name(alias, kind), "strong"))
        dobs = [bd for m in _DOB_RE.finditer(remarks) for bd in _parse_sdn_dob(m[1])]
        programs = tuple(p.strip(" []") for p in _sdn_field(row[3]).split("] [") if p.strip())
        entries.append(
            ListEntry("ofac_sdn", ent_num, kind, tuple(names), tuple(dobs), programs, ent_num)
        )
    return entries


# ── FollowTheMoney JSON lines ───────────────────────────────────────────────────────────────

_FTM_KINDS: dict[str, EntryKind] = {
    "Person": "person",
    "Organization": "entity",
    "Company": "entity",
    "LegalEntity": "entity",
    "PublicBody": "entity",
    "Vessel": "vessel",
    "Airplane": "aircraft",
}


def _parse_ftm(path: Path, data: bytes) -> list[ListEntry]:
    entries: list[ListEntry] = []
    for line_no, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(str(path), line_no, f"invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or "id" not in obj or "schema" not in obj:
            raise DataFileError(str(path), line_no, "FtM entity needs 'id' and 'schema'")
        kind = _FTM_KINDS.get(str(obj["schema"]))
        if kind is None:
            continue  # addresses, sanctions, relationships: not screenable parties
        props = obj.get("properties") or {}
        caption = str(obj.get("caption") or "")
        raw_names = [caption, *props.get("name", []), *props.get("alias", [])]
        raw_names += props.get("previousName", []) + props.get("weakAlias", [])
        names: list[ListName] = []
        seen: set[str] = set()
        weak = set(props.get("weakAlias", []))
        for n in raw_names:
            if n and n not in seen:
                seen.add(n)
                quality: NameQuality = (
                    "primary" if not names else ("weak" if n in weak else "strong")
                )
                names.append(ListName(n, quality))
        if not names:
            raise DataFileError(str(path), line_no, f"entity {obj['id']} has no name")
        dobs: list[BirthDate] = []
        for d in props.get("birthDate", []):
            bd = _ftm_date(str(d))
            if bd is not None:
                dobs.append(bd)
        programs = tuple(str(t) for t in obj.get("datasets", []))
        entries.append(
            ListEntry("opensanctions", str(obj["id"]), kind, tuple(names), tuple(dobs), programs)
        )
    return entries


def _ftm_date(text: str) -> BirthDate | None:
    try:
        if len(text) >= 10:
            return BirthDate(exact=date.fromisoformat(text[:10]))
        if len(text) >= 4 and text[:4].isdigit():
            return BirthDate(year_from=int(text[:4]), year_to=int(text[:4]))
    except ValueError:
        return None
    return None
