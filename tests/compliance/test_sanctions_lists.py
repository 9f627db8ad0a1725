"""List loaders: the UN XML, OFAC SDN.CSV and FtM JSON formats as published."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from crowdleverage.compliance.lists import BirthDate, load_list_file
from crowdleverage.domain.errors import DataFileError

DATA = Path(__file__).resolve().parents[2] / "data" / "compliance"
UN_XML = DATA / "un_sc_consolidated_2018-10-29.xml"
FTM = DATA / "opensanctions_ftm_sample_7entities.ftm.json"
SDN = Path(__file__).parent / "fixtures" / "sdn_sample.csv"


def test_un_list_loads_all_individuals_and_entities() -> None:
    loaded = load_list_file(UN_XML)

    assert loaded.fmt == "un_xml"
    assert loaded.version == "2018-10-29"
    kinds = [e.kind for e in loaded.entries]
    assert kinds.count("person") == 703
    assert kinds.count("entity") == 390


def test_un_entry_keeps_aliases_quality_original_script_and_dob() -> None:
    entries = {e.entry_id: e for e in load_list_file(UN_XML).entries}

    haq = entries["2854925"]  # QDi.268, ABDUL HAQ
    assert haq.reference == "QDi.268"
    assert haq.primary_name == "ABDUL HAQ"
    names = {n.name: n.quality for n in haq.names}
    assert names["Abudu Hake"] == "strong"
    assert names["Saifuding"] == "weak"
    assert names["阿不都·哈克"] == "original_script"
    assert haq.birth_dates == (BirthDate(exact=date(1971, 10, 10)),)


def test_un_year_range_dob_is_kept_as_range() -> None:
    entries = load_list_file(UN_XML).entries
    ranges = [bd for e in entries for bd in e.birth_dates if bd.year_from != bd.year_to]
    assert ranges, "the 2018 list has BETWEEN dates of birth"
    assert all(
        bd.year_from is not None and bd.year_to is not None and bd.year_from < bd.year_to
        for bd in ranges
    )


def test_sdn_csv_fixture_parses_columns_aliases_and_dobs() -> None:
    loaded = load_list_file(SDN)

    assert loaded.fmt == "ofac_sdn_csv"
    by_id = {e.entry_id: e for e in loaded.entries}
    assert set(by_id) == {"9001", "9002", "9003", "9004"}
    chen = by_id["9002"]
    assert chen.kind == "person"
    assert [n.name for n in chen.names] == ["Haoran CHEN", "Hao Ran CHEN", "Henry TAN"]
    assert chen.birth_dates == (
        BirthDate(exact=date(1975, 2, 3)),
        BirthDate(year_from=1976, year_to=1976),
    )
    assert by_id["9001"].kind == "entity"
    assert by_id["9001"].programs == ("NPWMD", "IFSR")
    assert by_id["9003"].kind == "vessel"


def test_sdn_csv_in_latin1_as_published(tmp_path: Path) -> None:
    path = tmp_path / "SDN.CSV"
    path.write_bytes(SDN.read_text(encoding="utf-8").encode("latin-1"))

    entries = {e.entry_id: e for e in load_list_file(path).entries}

    assert entries["9004"].primary_name == "José Antonio MORALES GUTIERREZ"


def test_sdn_csv_with_wrong_column_count_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    good = SDN.read_text(encoding="utf-8").splitlines()[0]
    path.write_text(good + "\n" + '9100,"SHORT ROW",-0- ,"SDGT"\n', encoding="utf-8")

    with pytest.raises(DataFileError) as err:
        load_list_file(path)

    assert err.value.line == 2
    assert "expected 12 columns, got 4" in err.value.reason


def test_sdn_csv_unknown_type_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('9100,"X",alien,"SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n')

    with pytest.raises(DataFileError, match="unknown SDN_Type 'alien'"):
        load_list_file(path)


def test_ftm_json_lines_load_people_and_organisations() -> None:
    loaded = load_list_file(FTM)

    assert loaded.fmt == "ftm_json"
    by_caption = {e.primary_name: e for e in loaded.entries}
    kuz = by_caption["Vitaly Yurievich KUZMENKO"]
    assert kuz.kind == "person"
    assert kuz.birth_dates == (BirthDate(exact=date(1971, 1, 22)),)
    assert "Виталий Юрьевич КУЗЬМЕНКО" in {n.name for n in kuz.names}
    assert by_caption["IRGC"].kind == "entity"


def test_truncated_xml_is_a_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "un.xml"
    path.write_bytes(UN_XML.read_bytes()[:5000])

    with pytest.raises(DataFileError, match="invalid XML"):
        load_list_file(path)


def test_unknown_format_and_empty_file(tmp_path: Path) -> None:
    odd = tmp_path / "list.txt"
    odd.write_text("hello world\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")

    with pytest.raises(DataFileError, match="unknown list format"):
        load_list_file(odd)
    with pytest.raises(DataFileError, match="empty"):
        load_list_file(empty)
