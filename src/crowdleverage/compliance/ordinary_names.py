"""Ordinary names for measuring the false-positive rate of screening (tests and bench).

Common Chinese surnames and given names (characters and their pinyin) and common English first
and last names; combined deterministically so that runs are comparable.
"""

from __future__ import annotations

import random


def _words(text: str) -> list[str]:
    return text.split()


# The most common Chinese surnames (characters), roughly in order of frequency.
CN_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
    "曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石"
    "廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱"
    "严覃武戴莫孔向汤"
)
# Common given-name characters; given names are one or two of them.
CN_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
    "玉兰萍鹏建红辉林文斌宇浩凯晨欣怡子涵梓轩雨婷佳琪思博俊"
)
EN_FIRST = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa "
    "Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew "
    "Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Laura"
)
EN_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts"
)


def ordinary_names(n: int, seed: int = 20160104) -> list[str]:
    """n distinct ordinary names: one third Chinese characters, one third pinyin, one third
    English. Deterministic for a seed."""
    from pypinyin import lazy_pinyin

    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = len(out) % 3
        if k == 2:
            name = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
        else:
            surname = rng.choice(CN_SURNAMES)
            given = "".join(rng.choice(CN_GIVEN) for _ in range(rng.choice((1, 2))))
            name = surname + given
            if k == 1:
                name = f"{lazy_pinyin(surname)[0].title()} {''.join(lazy_pinyin(given)).title()}"
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out
