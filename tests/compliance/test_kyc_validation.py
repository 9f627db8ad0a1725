"""ID number, bank card, phone, name and expiry validation with valid and invalid values."""

from __future__ import annotations

from datetime import date

import pytest

from crowdleverage.compliance import kyc
from crowdleverage.domain.errors import InvalidInput

TODAY = date(2026, 1, 5)


@pytest.mark.parametrize(
    ("number", "birth", "sex", "region"),
    [
        ("11010519491231002X", date(1949, 12, 31), "female", "北京市 朝阳区"),  # GB 11643 sample
        ("440304199003071010", date(1990, 3, 7), "male", "广东省 福田区"),
        ("320106198508151235", date(1985, 8, 15), "male", "江苏省 鼓楼区"),
        (" 11010519491231002x ", date(1949, 12, 31), "female", "北京市 朝阳区"),  # lower-case x
    ],
)
def test_valid_resident_ids(number: str, birth: date, sex: str, region: str) -> None:
    rid = kyc.validate_resident_id(number, today=TODAY)

    assert rid.birth_date == birth
    assert rid.sex == sex
    assert rid.region == region
    assert rid.number.endswith(number.strip()[-1].upper())
    assert rid.masked == f"{rid.number[:6]}********{rid.number[-4:]}"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("1101051949123100", "must have 18 characters, has 16"),
        ("11010519491231002Y", "17 digits followed by a digit or X"),
        ("11010519491331002X", "birth date 19491331 is not a valid date"),
        ("110105194912310020", "check digit is 0, expected X"),
        ("110105208001010015", "is in the future"),
        ("990105194912310023", "region code 990105 is not an administrative division"),
    ],
)
def test_invalid_resident_ids_say_why(number: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        kyc.validate_resident_id(number, today=TODAY)

    assert reason in err.value.message
    assert err.value.details["field"] == "id_number"


def test_bank_cards_luhn() -> None:
    assert kyc.validate_bank_card("6222 0212 3456 7890 128") == "6222021234567890128"
    assert kyc.validate_bank_card("6217000000000000004") == "6217000000000000004"
    with pytest.raises(InvalidInput, match="Luhn check digit is 9, expected 8"):
        kyc.validate_bank_card("6222021234567890129")
    with pytest.raises(InvalidInput, match="16 to 19 digits, has 12"):
        kyc.validate_bank_card("622202123456")
    with pytest.raises(InvalidInput, match="digits only"):
        kyc.validate_bank_card("6222-0212-ABCD")
    assert kyc.mask_card("6222021234567890128") == "622202*********0128"


def test_phone_name_and_expiry() -> None:
    assert kyc.validate_phone("+86 138-0013-8000") == "13800138000"
    with pytest.raises(InvalidInput, match="11-digit mainland mobile"):
        kyc.validate_phone("12800138000")
    assert kyc.validate_name("  王  小明 ") == "王 小明"
    assert kyc.validate_name("阿不都·哈克") == "阿不都·哈克"
    with pytest.raises(InvalidInput, match="must not be empty"):
        kyc.validate_name("   ")
    with pytest.raises(InvalidInput, match="may contain"):
        kyc.validate_name("Robert'); DROP TABLE--")
    assert kyc.validate_document_expiry(date(2030, 1, 1), today=TODAY) == date(2030, 1, 1)
    with pytest.raises(InvalidInput, match="document expired on 2026-01-05"):
        kyc.validate_document_expiry(TODAY, today=TODAY)
