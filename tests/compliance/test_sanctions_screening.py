"""Screening against the real UN consolidated list (2018-10-29): exact names, reordering,
punctuation, aliases, misspellings, diacritics, Chinese characters vs pinyin, dates of birth,
and ordinary names that must not hit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from crowdleverage.compliance.lists import load_list_file
from crowdleverage.compliance.ordinary_names import ordinary_names
from crowdleverage.compliance.screening import DEFAULT_THRESHOLD, Screener
from crowdleverage.domain.errors import InvalidInput

DATA = Path(__file__).resolve().parents[2] / "data" / "compliance"
SDN = Path(__file__).parent / "fixtures" / "sdn_sample.csv"

RI_WON_HO = "6908555"  # KPi.033, DOB 1964-07-17
CHANG_CHANG_HA = "6908570"  # KPi.037, alias "Jang Chang Ha", DOB 1964-01-10
ABDUL_HAQ = "2854925"  # QDi.268, aliases "Abudu Hake", "Maimaitiming Maimaiti", 阿不都·哈克
SHANGHAI_DONGFENG = "6908695"  # KPe.072 SHANGHAI DONGFENG SHIPPING CO LTD


@pytest.fixture(scope="module")
def un() -> Screener:
    return Screener(load_list_file(DATA / "un_sc_consolidated_2018-10-29.xml").entries)


def top(un: Screener, name: str, dob: date | None = None) -> tuple[str, int, tuple[str, ...]]:
    result = un.screen(name, dob, min_score=0)
    assert result.hits, f"no candidate at all for {name!r}"
    h = result.hits[0]
    return h.entry_id, h.score, h.reasons


@pytest.mark.parametrize(
    ("query", "entry_id"),
    [
        ("RI WON HO", RI_WON_HO),  # exact
        ("Ho Won Ri", RI_WON_HO),  # reordered
        ("ri-won, HO.", RI_WON_HO),  # case and punctuation
        ("Jang Chang-ha", CHANG_CHANG_HA),  # alias
        ("Abdul Haqq", ABDUL_HAQ),  # misspelling
        ("Maimaitiming Maimaity", ABDUL_HAQ),  # misspelled alias
        ("ʿAbd al-Ḥaq", ABDUL_HAQ),  # diacritics and ayn against "'Abd Al-Haq"
        ("Abdul Haq Wardak", ABDUL_HAQ),  # listed name inside a longer name
        ("阿不都哈克", ABDUL_HAQ),  # Chinese characters against original script / pinyin
        ("买买提明·买买提", ABDUL_HAQ),  # Chinese characters against the pinyin alias
        ("上海东风航运有限公司", SHANGHAI_DONGFENG),  # Chinese company name
        ("Shanghai Dong Feng Shipping Company Limited", SHANGHAI_DONGFENG),  # split syllables
    ],
)
def test_listed_names_hit(un: Screener, query: str, entry_id: str) -> None:
    result = un.screen(query)

    assert result.is_hit, f"{query!r} should hit, best {result.top_score}"
    assert result.hits[0].entry_id == entry_id
    assert result.hits[0].score >= DEFAULT_THRESHOLD
    assert result.hits[0].reasons


def test_reasons_explain_the_match(un: Screener) -> None:
    _, _, reordered = top(un, "Ho Won Ri")
    _, _, alias = top(un, "Jang Chang Ha")
    _, _, script = top(un, "阿不都·哈克")

    assert "same words in another order" in reordered
    assert "alias" in alias
    assert "name in original script" in script


def test_date_of_birth_raises_or_lowers_the_score(un: Screener) -> None:
    first, no_dob, _ = top(un, "Chang Chang Ho")
    second, same_dob, why_same = top(un, "Chang Chang Ho", date(1964, 1, 10))
    third, other_dob, why_other = top(un, "Chang Chang Ho", date(1990, 5, 1))

    assert first == second == third == CHANG_CHANG_HA
    assert other_dob < no_dob < same_dob
    assert any("date of birth matches 1964-01-10" in r for r in why_same)
    assert any("differs from listed 1964-01-10" in r for r in why_other)


def test_exact_name_with_other_dob_is_still_a_hit_for_review(un: Screener) -> None:
    result = un.screen("RI WON HO", date(1990, 1, 1))

    assert result.is_hit
    assert result.hits[0].score < 100


def test_weak_alias_scores_below_strong_name(un: Screener) -> None:
    _, weak, reasons = top(un, "Saifuding")  # QUALITY Low alias of QDi.268
    _, strong, _ = top(un, "Abudu Hake")

    assert "low-quality alias" in reasons
    assert weak < strong == 100


def test_ordinary_names_do_not_hit(un: Screener) -> None:
    names = ordinary_names(1500)
    results = un.screen_many([(n, None) for n in names])

    false_positives = [r.query for r in results if r.is_hit]
    rate = len(false_positives) / len(names)
    print(f"\nfalse-positive rate on {len(names)} ordinary names: {rate:.2%} {false_positives}")
    assert rate <= 0.005
    for clean in ("Wang Wei", "李娜", "John Smith", "张伟", "Li Wei", "Mary Johnson"):
        assert not un.screen(clean).is_hit, clean


def test_batch_equals_one_by_one(un: Screener) -> None:
    queries = [("Ho Won Ri", None), ("Wang Wei", None), ("Abdul Haqq", date(1971, 10, 10))]

    batch = un.screen_many(queries)

    assert batch == [un.screen(n, d) for n, d in queries]


def test_sdn_and_pinyin_person(tmp_path: Path) -> None:
    screener = Screener(load_list_file(SDN).entries)

    by_chars = screener.screen("陈浩然", date(1975, 2, 3))
    by_name = screener.screen("Chen Hao-Ran")
    entity = screener.screen("Northern Star Trading Company Limited")

    assert by_chars.is_hit and by_chars.hits[0].entry_id == "9002"
    assert any("date of birth matches" in r for r in by_chars.hits[0].reasons)
    assert by_name.is_hit and by_name.hits[0].entry_id == "9002"
    assert entity.is_hit and entity.hits[0].entry_id == "9001"
    assert not screener.screen("陈小明").is_hit


def test_empty_name_and_bad_threshold_are_rejected(un: Screener) -> None:
    with pytest.raises(InvalidInput, match="must not be empty"):
        un.screen("  ")
    with pytest.raises(InvalidInput, match="threshold"):
        Screener([], threshold=20)
