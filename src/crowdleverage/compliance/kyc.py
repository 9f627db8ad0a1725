"""KYC input validation: PRC resident identity number (GB 11643), name, mobile phone, bank card
(Luhn), document expiry. Each failure is an `InvalidInput` whose `field` and `reason` say exactly
what is wrong; python-stdnum does the check-digit arithmetic and the region table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, InvalidComponent, ValidationError

from crowdleverage.domain.errors import InvalidInput

_PHONE_RE = re.compile(r"^1[3-9]\d{9}$")  # mainland mobile numbers, 11 digits
_NAME_RE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff·•A-Za-z .'\-]+$")


def _bad(field: str, reason: str, value: str | None = None) -> InvalidInput:
    details: dict[str, object] = {"field": field, "reason": reason}
    if value is not None:
        details["value"] = value
    return InvalidInput(f"{field}: {reason}", **details)


@dataclass(frozen=True, slots=True)
class ResidentId:
    number: str  # 18 characters, final check character upper-case
    birth_date: date
    region_code: str  # first six digits (administrative division)
    region: str  # province / prefecture / county names from stdnum's table
    sex: str  # "male" | "female" from the sequence digit's parity

    @property
    def masked(self) -> str:
        return f"{self.number[:6]}********{self.number[-4:]}"

    @property
    def digest(self) -> str:
        return sha256_text(self.number)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate_resident_id(text: str, *, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident identity number and return its parts."""
    number = ric.compact(text or "").upper()
    if len(number) != 18:
        raise _bad("id_number", f"must have 18 characters, has {len(number)}")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise _bad("id_number", "must be 17 digits followed by a digit or X")
    try:
        birth = ric.get_birth_date(number)
    except (InvalidComponent, ValueError):
        raise _bad("id_number", f"birth date {number[6:14]} is not a valid date") from None
    if birth > (today or date.today()):
        raise _bad("id_number", f"birth date {birth.isoformat()} is in the future")
    if birth.year < 1900:
        raise _bad("id_number", f"birth date {birth.isoformat()} is before 1900")
    expected = ric.calc_check_digit(number)
    if number[17] != expected:
        raise _bad("id_number", f"check digit is {number[17]}, expected {expected} (GB 11643)")
    try:
        place = ric.get_birth_place(number)
    except (InvalidComponent, InvalidChecksum, ValidationError):
        raise _bad(
            "id_number", f"region code {number[:6]} is not an administrative division"
        ) from None
    region = " ".join(v for k in ("province", "prefecture", "county") if (v := place.get(k)))
    sex = "male" if int(number[16]) % 2 else "female"
    return ResidentId(number, birth, number[:6], region, sex)


def validate_bank_card(text: str) -> str:
    """A UnionPay/debit card number: 16 to 19 digits with a valid Luhn check digit."""
    digits = re.sub(r"[\s-]", "", text or "")
    if not digits.isdigit():
        raise _bad("bank_card", "must contain digits only")
    if not 16 <= len(digits) <= 19:
        raise _bad("bank_card", f"must have 16 to 19 digits, has {len(digits)}")
    if not luhn.is_valid(digits):
        expected = luhn.calc_check_digit(digits[:-1])
        raise _bad("bank_card", f"Luhn check digit is {digits[-1]}, expected {expected}")
    return digits


def mask_card(digits: str) -> str:
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def validate_phone(text: str) -> str:
    digits = re.sub(r"[\s-]", "", text or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    if not _PHONE_RE.match(digits):
        raise _bad("phone", "must be an 11-digit mainland mobile number starting 13-19")
    return digits


def validate_name(text: str) -> str:
    name = " ".join((text or "").split())
    if not name:
        raise _bad("name", "must not be empty")
    if len(name) > 64:
        raise _bad("name", f"is {len(name)} characters long, at most 64")
    if not _NAME_RE.match(name):
        raise _bad("name", "may contain Chinese characters, Latin letters, spaces and · . ' -")
    return name


def validate_document_expiry(expiry: date, *, today: date | None = None) -> date:
    if expiry <= (today or date.today()):
        raise _bad("document_expiry", f"document expired on {expiry.isoformat()}")
    return expiry


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
