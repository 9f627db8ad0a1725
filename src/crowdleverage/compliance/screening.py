"""Sanctions screening: fuzzy name matching against loaded lists, with reasons.

Every list name (primary, aliases, original script) is normalised into one or more forms
(normalize.py). Blocking keys (first and last two letters of each word and of the joined name)
pick the list names worth comparing -- about 4% of the UN list for an ordinary name -- and
`rapidfuzz.process.cdist` compares the query with all of them at once on two precomputed keys:
tokens sorted (word order, case, punctuation and diacritics do not matter;
misspellings cost a few points) and tokens joined (romanisations that split or join syllables:
"Abudu Hake" / "阿不都哈克"). A token index finds list names that share words with the query, for
partial names ("Abdul Haq" within "Abdul Haq Wardak"), scored by aligning words one by one.
Dates of birth, when both sides know them, raise or lower the score. Scores are 0..100;
`threshold` separates a hit (opens a case, blocks onboarding) from a near miss.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from rapidfuzz import fuzz, process

from crowdleverage.compliance.lists import BirthDate, ListEntry
from crowdleverage.compliance.normalize import NameForm, name_forms
from crowdleverage.domain.errors import InvalidInput

DEFAULT_THRESHOLD = 88
_DOB_EXACT_BONUS = 6
_DOB_YEAR_BONUS = 3
_DOB_MISMATCH_PENALTY = 10
_WEAK_ALIAS_PENALTY = 8
_TOKEN_MATCH_MIN = 80  # two words "agree" at this ratio or above
_COMPACT_FUZZY_PENALTY = 5
_SHORT_NAME_CHARS = 24  # below this combined length one edit weighs more than `ratio` says


@dataclass(frozen=True, slots=True)
class Hit:
    list_id: str
    entry_id: str
    reference: str
    kind: str
    primary_name: str
    matched_name: str
    name_quality: str
    score: int
    reasons: tuple[str, ...]
    programs: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "list": self.list_id,
            "entry_id": self.entry_id,
            "reference": self.reference,
            "kind": self.kind,
            "primary_name": self.primary_name,
            "matched_name": self.matched_name,
            "name_quality": self.name_quality,
            "score": self.score,
            "reasons": list(self.reasons),
            "programs": list(self.programs),
        }


@dataclass(frozen=True, slots=True)
class ScreenResult:
    query: str
    birth_date: date | None
    threshold: int
    hits: tuple[Hit, ...] = field(default=())  # best per list entry, highest score first

    @property
    def is_hit(self) -> bool:
        return bool(self.hits) and self.hits[0].score >= self.threshold

    @property
    def top_score(self) -> int:
        return self.hits[0].score if self.hits else 0

    def to_dict(self) -> dict[str, object]:
        return {
            "query": self.query,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "threshold": self.threshold,
            "hit": self.is_hit,
            "top_score": self.top_score,
            "matches": [h.to_dict() for h in self.hits],
        }


@dataclass(frozen=True, slots=True)
class _Variant:
    entry: int  # index into Screener.entries
    name: str
    quality: str
    form: NameForm


class Screener:
    """An in-memory index over one or more lists. Build once per list version; thread-safe
    for reads."""

    def __init__(self, entries: Sequence[ListEntry], *, threshold: int = DEFAULT_THRESHOLD):
        if not 50 <= threshold <= 100:
            raise InvalidInput(f"threshold {threshold} must be between 50 and 100")
        self.threshold = threshold
        self.entries = tuple(entries)
        variants: list[_Variant] = []
        for i, entry in enumerate(self.entries):
            kind = "person" if entry.kind == "person" else "entity"
            seen: set[str] = set()
            for ln in entry.names:
                for form in name_forms(ln.name, kind=kind):
                    if form.sorted_key not in seen:
                        seen.add(form.sorted_key)
                        variants.append(_Variant(i, ln.name, ln.quality, form))
        self._variants = variants
        self._sorted_keys = [v.form.sorted_key for v in variants]
        self._compact_keys = [v.form.compact_key for v in variants]
        self._sorted_arr = np.array(self._sorted_keys, dtype=object)
        self._compact_arr = np.array(self._compact_keys, dtype=object)
        index: dict[str, list[int]] = defaultdict(list)
        blocks: dict[str, set[int]] = defaultdict(set)
        for vi, v in enumerate(variants):
            for tok in set(v.form.tokens):
                index[tok].append(vi)
            for key in _block_keys(v.form):
                blocks[key].add(vi)
        self._token_index = dict(index)
        self._blocks = {k: np.fromiter(sorted(ids), dtype=np.int64) for k, ids in blocks.items()}

    @property
    def variant_count(self) -> int:
        return len(self._variants)

    # ── public API ──────────────────────────────────────────────────────────────────────────

    def screen(
        self, name: str, birth_date: date | None = None, *, min_score: int | None = None
    ) -> ScreenResult:
        return self.screen_many([(name, birth_date)], min_score=min_score)[0]

    def screen_many(
        self, queries: Iterable[tuple[str, date | None]], *, min_score: int | None = None
    ) -> list[ScreenResult]:
        floor = self.threshold if min_score is None else min_score
        return self._screen_batch(list(queries), floor)

    # ── matching ────────────────────────────────────────────────────────────────────────────

    def _screen_batch(self, qs: list[tuple[str, date | None]], floor: int) -> list[ScreenResult]:
        for name, _ in qs:
            if not isinstance(name, str) or not name.strip():
                raise InvalidInput("name to screen must not be empty")
        owners: list[int] = []
        forms: list[NameForm] = []
        for qi, (name, _) in enumerate(qs):
            for f in _query_forms(name):
                owners.append(qi)
                forms.append(f)
        best: list[dict[int, tuple[int, _Variant, list[str]]]] = [{} for _ in qs]
        # dev: scores below the prefilter cannot reach `floor` even with a DOB bonus.
        prefilter = max(0, floor - _DOB_EXACT_BONUS)
        for r, f in enumerate(forms):
            dob = qs[owners[r]][1]
            for c, score, reasons in self._full_name_candidates(f, prefilter):
                self._consider(best[owners[r]], dob, c, score, reasons)
            for c, score in self._partial_candidates(f):
                reasons = [f"partial name match {score} (shared words)"]
                self._consider(best[owners[r]], dob, c, score, reasons)
        out: list[ScreenResult] = []
        for qi, (name, dob) in enumerate(qs):
            hits = [self._hit(v, s, rs) for s, v, rs in best[qi].values() if s >= floor]
            hits.sort(key=lambda h: (-h.score, h.list_id, h.entry_id))
            out.append(ScreenResult(name, dob, self.threshold, tuple(hits)))
        return out

    def _full_name_candidates(
        self, qf: NameForm, prefilter: int
    ) -> list[tuple[int, int, list[str]]]:
        """Whole-name comparison against the list names in the query's blocks (names sharing
        the first or last two letters of a word, or of the joined name), by `cdist`."""
        blocks = [self._blocks[k] for k in _block_keys(qf) if k in self._blocks]
        if not blocks:
            return []
        mask = np.zeros(len(self._variants), dtype=bool)
        for b in blocks:
            mask[b] = True
        cand = np.flatnonzero(mask)
        ids = cand.tolist()
        s_sorted = process.cdist(
            [qf.sorted_key],
            self._sorted_arr[cand].tolist(),
            scorer=fuzz.ratio,
            dtype=np.uint8,
            score_cutoff=prefilter,
        )[0]
        s_compact = process.cdist(
            [qf.compact_key],
            self._compact_arr[cand].tolist(),
            scorer=fuzz.ratio,
            dtype=np.uint8,
            score_cutoff=prefilter,
        )[0]
        out: list[tuple[int, int, list[str]]] = []
        for j in np.nonzero(np.maximum(s_sorted, s_compact))[0].tolist():
            c = ids[j]
            vf = self._variants[c].form
            so = _short_name_discount(int(s_sorted[j]), qf.sorted_key, vf.sorted_key)
            co = _short_name_discount(int(s_compact[j]), qf.compact_key, vf.compact_key)
            if co < 100:
                co -= _COMPACT_FUZZY_PENALTY  # joined-up near misses are weaker evidence
            if max(so, co) < prefilter:
                continue
            reasons = [f"name match {max(so, co)}"]
            if co > so:
                reasons.append("matches with the words joined (romanisation, spacing)")
            elif so == 100 and qf.tokens != vf.tokens:
                reasons.append("same words in another order")
            out.append((c, max(so, co), reasons))
        return out

    def _consider(
        self,
        best: dict[int, tuple[int, _Variant, list[str]]],
        dob: date | None,
        vi: int,
        base: int,
        reasons: list[str],
    ) -> None:
        v = self._variants[vi]
        entry = self.entries[v.entry]
        score = base
        if v.quality == "weak":
            score -= _WEAK_ALIAS_PENALTY
            reasons.append("low-quality alias")
        elif v.quality == "original_script":
            reasons.append("name in original script")
        elif v.quality == "strong":
            reasons.append("alias")
        adj, why = _dob_adjustment(dob, entry.birth_dates)
        if why:
            reasons.append(why)
        score = max(0, min(100, score + adj))
        prev = best.get(v.entry)
        if prev is None or score > prev[0]:
            best[v.entry] = (score, v, reasons)

    def _partial_candidates(self, form: NameForm) -> list[tuple[int, int]]:
        """List names sharing at least two words with the query, scored word by word."""
        if len(form.tokens) < 2:
            return []
        shared: dict[int, int] = defaultdict(int)
        for tok in set(form.tokens):
            for vi in self._token_index.get(tok, ()):
                shared[vi] += 1
        out: list[tuple[int, int]] = []
        for vi, n in shared.items():
            if n >= 2:
                score = _partial_score(form.tokens, self._variants[vi].form.tokens)
                if score:
                    out.append((vi, score))
        return out

    def _hit(self, v: _Variant, score: int, reasons: list[str]) -> Hit:
        e = self.entries[v.entry]
        return Hit(
            e.list_id,
            e.entry_id,
            e.reference,
            e.kind,
            e.primary_name,
            v.name,
            v.quality,
            score,
            tuple(reasons),
            e.programs,
        )


def _block_keys(form: NameForm) -> set[str]:
    """Blocking keys: first and last two letters of every word and of the joined name. A name
    is compared in full only with list names sharing a key -- a misspelling would have to hit
    both ends of every word to hide it."""
    keys = {f"c<{form.compact_key[:2]}", f"c>{form.compact_key[-2:]}"}
    for tok in form.tokens:
        keys.add(f"<{tok[:2]}")
        keys.add(f">{tok[-2:]}")
    return keys


def _query_forms(name: str) -> list[NameForm]:
    forms = name_forms(name, kind="person") + name_forms(name, kind="entity")
    seen: set[tuple[str, str]] = set()
    out: list[NameForm] = []
    for f in forms:
        key = (f.sorted_key, f.compact_key)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _short_name_discount(score: int, a: str, b: str) -> int:
    """`fuzz.ratio` forgives one edit in a short name as much as several in a long one
    ("jin yu" / "jin ryu" scores 92); scale the shortfall up for short names."""
    total = len(a) + len(b)
    if score >= 100 or total >= _SHORT_NAME_CHARS or total == 0:
        return score
    return max(0, int(100 - (100 - score) * _SHORT_NAME_CHARS / total))


def _partial_score(query: tuple[str, ...], listed: tuple[str, ...]) -> int:
    """Align the shorter name's words into the longer one's. Every word of the shorter name must
    agree with a distinct word of the longer; the score is their mean agreement, discounted by
    how much of the longer name is left unexplained -- more when the query is the shorter one
    (a listed "Han Yu Ro" is weak evidence against "Han Yu") than when the listed name is
    (a listed "Abdul Haq" against "Abdul Haq Wardak" is strong)."""
    if len(query) == len(listed):
        return 0  # same length: the full-name comparison already covers it
    short, long_ = (query, listed) if len(query) < len(listed) else (listed, query)
    remaining = list(long_)
    total = 0.0
    for tok in short:
        s, j = max((fuzz.ratio(tok, cand), j) for j, cand in enumerate(remaining))
        if s < _TOKEN_MATCH_MIN:
            return 0
        total += s
        remaining.pop(j)
    coverage = len(short) / len(long_)
    weight = 0.6 + 0.4 * coverage if short is query else 0.75 + 0.25 * coverage
    return int(total / len(short) * weight)


def _dob_adjustment(query: date | None, known: tuple[BirthDate, ...]) -> tuple[int, str]:
    if query is None or not known:
        return 0, ""
    for bd in known:
        if bd.exact is not None and bd.exact == query:
            return _DOB_EXACT_BONUS, f"date of birth matches {bd.as_text()}"
    for bd in known:
        lo = bd.exact.year if bd.exact else bd.year_from
        hi = bd.exact.year if bd.exact else bd.year_to
        if lo is not None and hi is not None and lo - 1 <= query.year <= hi + 1:
            return _DOB_YEAR_BONUS, f"year of birth consistent with {bd.as_text()}"
    listed = ", ".join(bd.as_text() for bd in known)
    return -_DOB_MISMATCH_PENALTY, f"date of birth differs from listed {listed}"
