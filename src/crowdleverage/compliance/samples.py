"""Valid, made-up identity data for the demo and the tests: resident ids with the right check
digit (region 110105, 北京市朝阳区), bank cards that pass Luhn, mobile numbers."""

from __future__ import annotations

from datetime import date

from stdnum import luhn
from stdnum.cn import ric


def resident_id(n: int, birth: date = date(1980, 5, 17)) -> str:
    body = f"110105{birth:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def bank_card(n: int) -> str:
    body = f"621700{n:012d}"
    return body + luhn.calc_check_digit(body)


def phone(n: int) -> str:
    return f"139{n % 10**8:08d}"
