"""Name normalisation for sanctions screening.

Every name, on the list side and on the query side, goes through the same function so that the
comparison is between like forms: Unicode NFKC, transliteration to ASCII (anyascii: diacritics,
Cyrillic, Arabic), Chinese characters to pinyin (pypinyin), case folding, punctuation to spaces,
legal-form words dropped ("co", "ltd", "有限公司"). A name gives one or more `NameForm`s: a
Chinese personal name is written in pinyin as "surname given" ("王小明" -> "wang xiaoming"), and
a Chinese company name is also offered with common words translated ("航运" -> "shipping") since
lists write such names half-romanised, half-translated ("SHANGHAI DONGFENG SHIPPING CO LTD").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from anyascii import anyascii
from pypinyin import Style, lazy_pinyin

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# Apostrophes and similar marks join ("My'ong" -> "myong"); other punctuation separates.
_JOINERS_RE = re.compile(r"['`\u2018\u2019\u02bb\u02bc\u00b4]")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")

# Words that carry no identity: legal forms and fillers. Dropped from both sides.
STOPWORDS = frozenset(
    {
        "co",
        "company",
        "ltd",
        "limited",
        "llc",
        "inc",
        "corp",
        "corporation",
        "plc",
        "gmbh",
        "sa",
        "the",
        "and",
        "of",
        "mr",
        "mrs",
        "ms",
    }
)

# Chinese legal-form suffixes removed before romanisation (longest first).
_CN_LEGAL_FORMS = ("股份有限公司", "有限责任公司", "有限公司", "集团", "公司")

# Common words in Chinese company names that lists translate rather than romanise.
_CN_GLOSSARY: dict[str, str] = {
    "航运": "shipping",
    "海运": "shipping",
    "国际": "international",
    "贸易": "trading",
    "银行": "bank",
    "科技": "technology",
    "技术": "technology",
    "香港": "hongkong",
    "实业": "industrial",
    "投资": "investment",
    "物流": "logistics",
    "能源": "energy",
    "石油": "petroleum",
    "货代": "freight",
}

# Surnames whose reading differs from the character's common reading, and compound surnames.
_SURNAME_READINGS: dict[str, str] = {
    "曾": "zeng",
    "单": "shan",
    "解": "xie",
    "仇": "qiu",
    "朴": "piao",
    "区": "ou",
    "查": "zha",
    "乐": "yue",
    "覃": "qin",
    "盖": "ge",
    "缪": "miao",
    "尉迟": "yuchi",
    "万俟": "moqi",
}
_COMPOUND_SURNAMES = frozenset(
    {"欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "夏侯", "令狐"}
)


@dataclass(frozen=True, slots=True)
class NameForm:
    """One comparable spelling of a name."""

    tokens: tuple[str, ...]  # normalised words, in written order
    sorted_key: str  # tokens sorted and joined by one space: order-free comparison
    compact_key: str  # tokens joined without spaces: "shang hai" == "shanghai"

    @classmethod
    def of(cls, tokens: list[str] | tuple[str, ...]) -> NameForm:
        toks = tuple(t for t in tokens if t)
        return cls(toks, " ".join(sorted(toks)), "".join(toks))


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def _ascii_tokens(text: str) -> list[str]:
    s = anyascii(unicodedata.normalize("NFKC", text)).lower()
    s = _JOINERS_RE.sub("", s)
    return [t for t in _NON_ALNUM_RE.split(s) if t and t not in STOPWORDS]


def _pinyin(chars: str) -> str:
    return "".join(lazy_pinyin(chars, style=Style.NORMAL, errors="ignore"))


def _person_pinyin(name: str) -> list[str]:
    """'王小明' -> ['wang', 'xiaoming']; a middle dot separates transliterated foreign parts."""
    if "·" in name or "•" in name:
        return [_pinyin(part) for part in re.split(r"[·•]", name) if part]
    surname_len = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
    surname, given = name[:surname_len], name[surname_len:]
    reading = _SURNAME_READINGS.get(surname) or _pinyin(surname)
    return [reading, _pinyin(given)] if given else [reading]


def _org_tokens(text: str, *, translate: bool) -> list[str]:
    s = text
    for form in _CN_LEGAL_FORMS:
        s = s.replace(form, " ")
    tokens: list[str] = []
    for run in re.split(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)", s):
        if not run.strip():
            continue
        if not _CJK_RUN_RE.fullmatch(run):
            tokens.extend(_ascii_tokens(run))
            continue
        if translate:
            # Translate glossary words, romanise the rest as one word per remaining stretch.
            parts = re.split("(" + "|".join(map(re.escape, _CN_GLOSSARY)) + ")", run)
            for part in parts:
                if part in _CN_GLOSSARY:
                    tokens.append(_CN_GLOSSARY[part])
                elif part:
                    tokens.extend(_split_place_words(part))
        else:
            tokens.extend(_split_place_words(run))
    return tokens


def _split_place_words(chars: str) -> list[str]:
    """Romanise a run of characters as two-syllable words ('上海东风' -> shanghai dongfeng),
    the usual shape of place names and trade names."""
    syllables = lazy_pinyin(chars, style=Style.NORMAL, errors="ignore")
    return ["".join(syllables[i : i + 2]) for i in range(0, len(syllables), 2)]


def name_forms(text: str, *, kind: str = "person") -> list[NameForm]:
    """All comparable forms of a name. `kind` is "person" or "entity"; it only matters for
    names in Chinese characters (person: surname + given name; entity: words, translated)."""
    text = text.strip()
    if not text:
        return []
    forms: list[NameForm] = []
    if has_cjk(text):
        bare = re.sub(r"[\s·•]", "", text)
        if kind == "person" and _CJK_RUN_RE.fullmatch(bare):
            if "·" in text or "•" in text or len(bare) <= 4:
                forms.append(NameForm.of(_person_pinyin(re.sub(r"\s", "", text))))
            else:
                forms.append(NameForm.of([_pinyin(bare)]))
        else:
            forms.append(NameForm.of(_org_tokens(text, translate=True)))
            forms.append(NameForm.of(_org_tokens(text, translate=False)))
    else:
        forms.append(NameForm.of(_ascii_tokens(text)))
    out: list[NameForm] = []
    seen: set[str] = set()
    for f in forms:
        if f.tokens and f.sorted_key not in seen:
            seen.add(f.sorted_key)
            out.append(f)
    return out


def normalise_simple(text: str) -> str:
    """One canonical string for a name (payer-name checks): first form's sorted key."""
    forms = name_forms(text)
    return forms[0].sorted_key if forms else ""
