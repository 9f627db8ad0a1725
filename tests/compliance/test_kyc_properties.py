"""Property tests: check digits (GB 11643, Luhn) and name-matching invariants on the real UN
list. A few examples by default; many with CROWDLEV_LONG=1."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric

from crowdleverage.compliance import kyc
from crowdleverage.compliance.lists import load_list_file
from crowdleverage.compliance.screening import Screener
from crowdleverage.domain.errors import InvalidInput

EXAMPLES = 500 if os.environ.get("CROWDLEV_LONG") == "1" else 40
PROFILE = settings(max_examples=EXAMPLES, deadline=None)
UN_XML = Path(__file__).resolve().parents[2] / "data/compliance/un_sc_consolidated_2018-10-29.xml"
SCREENER = Screener(load_list_file(UN_XML).entries)
ENTRIES = [e for e in SCREENER.entries if len(e.primary_name.split()) >= 2]
TODAY = date(2026, 1, 5)


@PROFILE
@given(
    birth=st.dates(min_value=date(1950, 1, 1), max_value=date(2007, 12, 31)),
    seq=st.integers(min_value=0, max_value=999),
    wrong=st.sampled_from("0123456789X"),
)
def test_resident_id_check_digit(birth: date, seq: int, wrong: str) -> None:
    body = f"110105{birth:%Y%m%d}{seq:03d}"  # 北京市朝阳区 exists for all these years
    right = ric.calc_check_digit(body + "0")

    rid = kyc.validate_resident_id(body + right, today=TODAY)

    assert rid.birth_date == birth
    if wrong != right:
        with pytest.raises(InvalidInput, match="check digit"):
            kyc.validate_resident_id(body + wrong, today=TODAY)


@PROFILE
@given(body=st.text(alphabet="0123456789", min_size=15, max_size=18), bump=st.integers(1, 9))
def test_bank_card_luhn(body: str, bump: int) -> None:
    good = body + luhn.calc_check_digit(body)
    bad = body + str((int(good[-1]) + bump) % 10)

    assert kyc.validate_bank_card(good) == good
    with pytest.raises(InvalidInput, match="Luhn"):
        kyc.validate_bank_card(bad)


@PROFILE
@given(idx=st.integers(0, len(ENTRIES) - 1), data=st.data())
def test_word_order_case_and_punctuation_never_change_the_match(
    idx: int, data: st.DataObject
) -> None:
    entry = ENTRIES[idx]
    words = data.draw(st.permutations(entry.primary_name.split()))
    sep = data.draw(st.sampled_from([" ", "-", ", ", "  "]))
    query = sep.join(w.lower() if data.draw(st.booleans()) else w.upper() for w in words)

    result = SCREENER.screen(query)

    assert result.is_hit
    assert entry.entry_id in {h.entry_id for h in result.hits if h.score == 100}
