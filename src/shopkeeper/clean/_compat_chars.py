"""The characters NFKC changes beyond NFC, as a regex class, for the text fast path.

NFKC is NFC after compatibility decomposition, so a text holding no character with a
compatibility mapping has NFKC(text) == NFC(text). `_text.norm_text` uses that: the
fullwidth ASCII forms (typed with CJK input methods) and the no-break space (pasted from
HTML), whose NFKC is one ASCII character each, are translated in SQL and the rest goes
through DuckDB's built-in NFC; only text holding one of the characters below calls the
`nfkc` UDF. The class is computed from the engine that normalizes (pyarrow's
utf8proc) by `compat_class()`; a test checks the constant still equals it.
"""

from __future__ import annotations

FULLWIDTH_FROM = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u00a0"
"""Fullwidth `！` … `～` and the no-break space: their NFKC is one ASCII character."""
FULLWIDTH_TO = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
"""What each character of `FULLWIDTH_FROM` becomes, in the same order."""


def compat_class() -> str:
    """The RE2 class body of every character other than `FULLWIDTH_FROM`'s whose NFKC
    differs from its NFC (pyarrow's normalizer; about 0.6 s)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    points = [c for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000]
    chars = pa.array([chr(c) for c in points])
    differs = pc.not_equal(pc.utf8_normalize(chars, "NFKC"), pc.utf8_normalize(chars, "NFC"))
    skip = {ord(c) for c in FULLWIDTH_FROM}
    marked = [c for c, d in zip(points, differs.to_pylist(), strict=True) if d and c not in skip]
    runs: list[list[int]] = []
    for c in marked:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in runs)


COMPAT_CLASS = (
    "\\x{a8}\\x{aa}\\x{af}\\x{b2}-\\x{b5}\\x{b8}-\\x{ba}\\x{bc}-\\x{be}\\x{132}-\\x{133}"
    "\\x{13f}-\\x{140}\\x{149}\\x{17f}\\x{1c4}-\\x{1cc}\\x{1f1}-\\x{1f3}\\x{2b0}-\\x{2b8}"
    "\\x{2d8}-\\x{2dd}\\x{2e0}-\\x{2e4}\\x{37a}\\x{384}-\\x{385}\\x{3d0}-\\x{3d6}"
    "\\x{3f0}-\\x{3f2}\\x{3f4}-\\x{3f5}\\x{3f9}\\x{558}\\x{587}\\x{58b}-\\x{58c}"
    "\\x{675}-\\x{678}\\x{e33}\\x{eb3}\\x{edc}-\\x{edd}\\x{f0c}\\x{f77}\\x{f79}\\x{10fc}"
    "\\x{1d2c}-\\x{1d2e}\\x{1d30}-\\x{1d3a}\\x{1d3c}-\\x{1d4d}\\x{1d4f}-\\x{1d6a}\\x{1d78}"
    "\\x{1d9b}-\\x{1dbf}\\x{1e9a}-\\x{1e9b}\\x{1fbd}\\x{1fbf}-\\x{1fc1}\\x{1fcd}-\\x{1fcf}"
    "\\x{1fdd}-\\x{1fdf}\\x{1fed}-\\x{1fee}\\x{1ffd}-\\x{1ffe}\\x{2000}-\\x{200a}\\x{2011}"
    "\\x{2017}\\x{2024}-\\x{2026}\\x{202f}\\x{2033}-\\x{2034}\\x{2036}-\\x{2037}\\x{203c}"
    "\\x{203e}\\x{2047}-\\x{2049}\\x{2057}\\x{205f}\\x{2070}-\\x{2071}\\x{2074}-\\x{208e}"
    "\\x{2090}-\\x{209f}\\x{20a8}\\x{2100}-\\x{2103}\\x{2105}-\\x{2107}\\x{2109}-\\x{2113}"
    "\\x{2115}-\\x{2116}\\x{2119}-\\x{211d}\\x{2120}-\\x{2122}\\x{2124}\\x{2128}"
    "\\x{212c}-\\x{212d}\\x{212f}-\\x{2131}\\x{2133}-\\x{2139}\\x{213b}-\\x{2140}"
    "\\x{2145}-\\x{2149}\\x{2150}-\\x{217f}\\x{2189}\\x{222c}-\\x{222d}\\x{222f}-\\x{2230}"
    "\\x{2460}-\\x{24ea}\\x{2a0c}\\x{2a74}-\\x{2a76}\\x{2c7c}-\\x{2c7d}\\x{2d6f}\\x{2e9f}"
    "\\x{2ef3}\\x{2f00}-\\x{2fd5}\\x{3000}\\x{3036}\\x{3038}-\\x{303a}\\x{309b}-\\x{309c}"
    "\\x{309f}\\x{30ff}\\x{3131}-\\x{318e}\\x{3192}-\\x{319f}\\x{3200}-\\x{321e}"
    "\\x{3220}-\\x{3247}\\x{3250}-\\x{327e}\\x{3280}-\\x{33ff}\\x{a69c}-\\x{a69d}\\x{a770}"
    "\\x{a7f1}-\\x{a7f4}\\x{a7f8}-\\x{a7f9}\\x{ab5c}-\\x{ab5f}\\x{ab69}\\x{fb00}-\\x{fb06}"
    "\\x{fb13}-\\x{fb17}\\x{fb20}-\\x{fb29}\\x{fb4f}-\\x{fbb1}\\x{fbd3}-\\x{fd3d}"
    "\\x{fd50}-\\x{fd8f}\\x{fd92}-\\x{fdc7}\\x{fdf0}-\\x{fdfc}\\x{fe10}-\\x{fe19}"
    "\\x{fe30}-\\x{fe44}\\x{fe47}-\\x{fe52}\\x{fe54}-\\x{fe66}\\x{fe68}-\\x{fe6b}"
    "\\x{fe70}-\\x{fe72}\\x{fe74}\\x{fe76}-\\x{fefc}\\x{ff5f}-\\x{ffbe}\\x{ffc2}-\\x{ffc7}"
    "\\x{ffca}-\\x{ffcf}\\x{ffd2}-\\x{ffd7}\\x{ffda}-\\x{ffdc}\\x{ffe0}-\\x{ffe6}"
    "\\x{ffe8}-\\x{ffee}\\x{10781}-\\x{10785}\\x{10787}-\\x{107b0}\\x{107b2}-\\x{107bf}"
    "\\x{1b123}-\\x{1b126}\\x{1ccd6}-\\x{1ccf9}\\x{1d400}-\\x{1d454}\\x{1d456}-\\x{1d49c}"
    "\\x{1d49e}-\\x{1d49f}\\x{1d4a2}\\x{1d4a5}-\\x{1d4a6}\\x{1d4a9}-\\x{1d4ac}"
    "\\x{1d4ae}-\\x{1d4b9}\\x{1d4bb}\\x{1d4bd}-\\x{1d4c3}\\x{1d4c5}-\\x{1d505}"
    "\\x{1d507}-\\x{1d50a}\\x{1d50d}-\\x{1d514}\\x{1d516}-\\x{1d51c}\\x{1d51e}-\\x{1d539}"
    "\\x{1d53b}-\\x{1d53e}\\x{1d540}-\\x{1d544}\\x{1d546}\\x{1d54a}-\\x{1d550}"
    "\\x{1d552}-\\x{1d6a6}\\x{1d6a8}-\\x{1d7cb}\\x{1d7ce}-\\x{1d7ff}\\x{1df95}"
    "\\x{1dfcd}-\\x{1dfff}\\x{1e030}-\\x{1e06d}\\x{1ee00}-\\x{1ee03}\\x{1ee05}-\\x{1ee1f}"
    "\\x{1ee21}-\\x{1ee22}\\x{1ee24}\\x{1ee27}\\x{1ee29}-\\x{1ee32}\\x{1ee34}-\\x{1ee37}"
    "\\x{1ee39}\\x{1ee3b}\\x{1ee42}\\x{1ee47}\\x{1ee49}\\x{1ee4b}\\x{1ee4d}-\\x{1ee4f}"
    "\\x{1ee51}-\\x{1ee52}\\x{1ee54}\\x{1ee57}\\x{1ee59}\\x{1ee5b}\\x{1ee5d}\\x{1ee5f}"
    "\\x{1ee61}-\\x{1ee62}\\x{1ee64}\\x{1ee67}-\\x{1ee6a}\\x{1ee6c}-\\x{1ee72}"
    "\\x{1ee74}-\\x{1ee77}\\x{1ee79}-\\x{1ee7c}\\x{1ee7e}\\x{1ee80}-\\x{1ee89}"
    "\\x{1ee8b}-\\x{1ee9b}\\x{1eea1}-\\x{1eea3}\\x{1eea5}-\\x{1eea9}\\x{1eeab}-\\x{1eebb}"
    "\\x{1f100}-\\x{1f10a}\\x{1f110}-\\x{1f12e}\\x{1f130}-\\x{1f14f}\\x{1f16a}-\\x{1f16c}"
    "\\x{1f190}\\x{1f200}-\\x{1f202}\\x{1f210}-\\x{1f23b}\\x{1f240}-\\x{1f248}"
    "\\x{1f250}-\\x{1f251}\\x{1fbf0}-\\x{1fbf9}"
)
"""`compat_class()` under pyarrow 26.0.1: 3,822 characters in 199 runs."""
