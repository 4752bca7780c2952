"""Semantic data quality: items that look like one product under two ids.

Candidates are each item's nearest neighbours by text embedding; a candidate pair
is reported when its titles are also close as text (RapidFuzz token-sort ratio) and
the words that differ are spelling or layout changes, not a different attribute.
Online Retail shows why the last test matters: `PINK HANGING HEART T-LIGHT HOLDER`
and `WHITE HANGING HEART T-LIGHT HOLDER` are as close as two titles get, and they
are two products. Pairs are reported with their scores, never merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.errors import NotFoundError
from shopkeeper.features._embeddings import EMBEDDINGS_ASSET
from shopkeeper.features._encoder import require_ml
from shopkeeper.features._index import IndexConfig, build_ann, read_embeddings
from shopkeeper.logging import get_logger
from shopkeeper.warehouse import DerivedVersion, Warehouse, built_from, commit_derived

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    from shopkeeper.warehouse import AssetVersion, Workspace

_log = get_logger(__name__)

_TOKEN = re.compile(r"[a-z0-9]+")


class DuplicatesConfig(BaseModel):
    """Thresholds of the near-duplicate item check."""

    model_config = ConfigDict(extra="forbid")

    neighbours: int = Field(default=10, ge=1, le=100)
    """Nearest neighbours by embedding examined per item."""
    min_cosine: float = Field(default=0.85, ge=0, le=1)
    """Embedding cosine a pair needs, together with `min_text`."""
    min_text: float = Field(default=80.0, ge=0, le=100)
    """Text similarity (0-100) a pair needs, together with `min_cosine`."""
    typo_text: float = Field(default=92.0, ge=0, le=100)
    """A pair this close as text needs only `typo_cosine` (typos move embeddings)."""
    typo_cosine: float = Field(default=0.75, ge=0, le=1)
    same_word: float = Field(default=75.0, ge=0, le=100)
    """Two differing words this close (ratio) are one word spelled two ways."""
    max_pairs: int = Field(default=1000, ge=0)
    """At most this many pairs are kept in the report, best first."""


@dataclass(frozen=True)
class DuplicatePair:
    """Two item ids that may be one product."""

    item_a: str
    item_b: str
    title_a: str
    title_b: str
    cosine: float
    text: float
    """Text similarity of the titles, 0-100: the better of the token-sort ratio and
    the ratio with spaces removed."""
    score: float
    """Mean of the cosine and text / 100."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "item_a": self.item_a,
            "item_b": self.item_b,
            "title_a": self.title_a,
            "title_b": self.title_b,
            "cosine": round(self.cosine, 4),
            "text": round(self.text, 1),
            "score": round(self.score, 4),
        }


def tokens(title: str) -> list[str]:
    """Lower-case alphanumeric words.

    >>> tokens("Zinc T-Light Holder, STAR")
    ['zinc', 't', 'light', 'holder', 'star']
    """
    return _TOKEN.findall(title.lower())


def _same_word(a: str, b: str, cfg: DuplicatesConfig) -> bool:
    fuzz = require_ml("rapidfuzz.fuzz")
    return bool(a.startswith(b) or b.startswith(a) or fuzz.ratio(a, b) >= cfg.same_word)


def is_variant(title_a: str, title_b: str, cfg: DuplicatesConfig | None = None) -> bool:
    """True when the titles name different products: another number, or a word swapped.

    A word present on one side only (`ADULT APRON` vs `APRON`) is not a variant by
    itself; a word on each side with no spelling match (`PINK` vs `WHITE`) is.

    >>> is_variant("PINK HANGING HEART", "WHITE HANGING HEART")
    True
    >>> is_variant("STORAGE TIN VINTAGE DOILY", "STORAGE TIN VINTAGE DOILEY")
    False
    >>> is_variant("PAPER LANTERN 30", "PAPER LANTERN 60")
    True
    >>> is_variant("LUNCHBAG SUKI", "LUNCH BAG SUKI")
    False
    """
    cfg = cfg or DuplicatesConfig()
    ta, tb = tokens(title_a), tokens(title_b)
    if "".join(ta) == "".join(tb):
        return False
    only_a, only_b = set(ta) - set(tb), set(tb) - set(ta)
    if any(ch.isdigit() for t in only_a | only_b for ch in t):
        return True
    unmatched_a = [t for t in only_a if not any(_same_word(t, u, cfg) for u in only_b)]
    unmatched_b = [u for u in only_b if not any(_same_word(t, u, cfg) for t in only_a)]
    return bool(unmatched_a and unmatched_b)


def title_similarity(a: Sequence[str], b: Sequence[str]) -> npt.NDArray[np.float64]:
    """Pairwise text similarity (0-100) of normalized titles `a[i]`, `b[i]`.

    Word order aside (token sort), or spacing aside (the words run together):
    `LUNCHBAG SUKI` and `LUNCH BAG SUKI` are one title.
    """
    np_ = require_ml("numpy")
    cpdist = require_ml("rapidfuzz.process").cpdist
    fuzz = require_ml("rapidfuzz.fuzz")
    compact_a = [t.replace(" ", "") for t in a]
    compact_b = [t.replace(" ", "") for t in b]
    sims: npt.NDArray[np.float64] = np_.maximum(
        cpdist(a, b, scorer=fuzz.token_sort_ratio), cpdist(compact_a, compact_b, scorer=fuzz.ratio)
    )
    return sims


def close_pairs(
    cosine: npt.NDArray[np.float32], text: npt.NDArray[np.float64], cfg: DuplicatesConfig
) -> npt.NDArray[np.bool_]:
    """Which pairs are close enough in embedding and title to be duplicate candidates."""
    close: npt.NDArray[np.bool_] = ((cosine >= cfg.min_cosine) & (text >= cfg.min_text)) | (
        (cosine >= cfg.typo_cosine) & (text >= cfg.typo_text)
    )
    return close


def find_duplicate_items(
    item_ids: Sequence[str],
    titles: Sequence[str | None],
    vectors: npt.NDArray[np.float32],
    cfg: DuplicatesConfig | None = None,
    index: IndexConfig | None = None,
    queries: npt.NDArray[np.int64] | None = None,
) -> list[DuplicatePair]:
    """Candidate duplicate pairs among items, best first.

    Args:
        item_ids: One id per row of `vectors`.
        titles: The items' titles (None: the item takes no part).
        vectors: L2-normalized item embeddings, shape (n, d).
        cfg: Thresholds.
        index: How the neighbour search is done (exact below a size, HNSW above).
        queries: Rows whose neighbours are searched (default: all); pairs found from
            them may involve any item.
    """
    cfg = cfg or DuplicatesConfig()
    np_ = require_ml("numpy")
    n = len(item_ids)
    if n < 2:
        return []
    ann, _ = build_ann(vectors, index or IndexConfig())
    k = min(cfg.neighbours + 1, n)
    asked = np_.arange(n) if queries is None else np_.asarray(queries, dtype=np_.int64)
    if not len(asked):
        return []
    scores, rows = ann.search(vectors[asked], k)
    first = np_.repeat(asked, k)
    second, cos = rows.reshape(-1), scores.reshape(-1)
    keep = (second >= 0) & (second != first) & (cos >= min(cfg.min_cosine, cfg.typo_cosine))
    # A pair found from either side counts once.
    lo = np_.minimum(first[keep], second[keep])
    hi = np_.maximum(first[keep], second[keep])
    _, at = np_.unique(lo * n + hi, return_index=True)
    left, right, cos = lo[at], hi[at], cos[keep][at]
    norm = [" ".join(tokens(t)) if t else "" for t in titles]
    has = np_.array([bool(t) for t in norm])
    keep = has[left] & has[right]
    left, right, cos = left[keep], right[keep], cos[keep]
    if not len(left):
        return []
    text = title_similarity([norm[i] for i in left], [norm[j] for j in right])
    close = close_pairs(cos, text, cfg)
    pairs: list[DuplicatePair] = []
    for i, j, c, t in zip(left[close], right[close], cos[close], text[close], strict=True):
        ti, tj = str(titles[i]), str(titles[j])
        if is_variant(ti, tj, cfg):
            continue
        a, b = (i, j) if item_ids[i] <= item_ids[j] else (j, i)
        pairs.append(
            DuplicatePair(
                item_ids[a],
                item_ids[b],
                str(titles[a]),
                str(titles[b]),
                float(c),
                float(t),
                (float(c) + float(t) / 100) / 2,
            )
        )
    pairs.sort(key=lambda p: (-p.score, p.item_a, p.item_b))
    return pairs[: cfg.max_pairs]


def duplicates_report(pairs: list[DuplicatePair], n_items: int) -> dict[str, Any]:
    """The `semantic_duplicates` section of a quality report."""
    return {
        "items": n_items,
        "candidate_pairs": len(pairs),
        "items_in_pairs": len({p.item_a for p in pairs} | {p.item_b for p in pairs}),
        "pairs": [p.as_dict() for p in pairs],
    }


DUPLICATES_ASSET = "item_duplicates"
_REPORTED = 50
"""Pairs copied into the quality report; all of them are in the asset's data."""


INCREMENTAL_MAX_SHARE = 0.2
"""Above this share of new or changed item texts, the check starts over."""


def _reusable_pairs(
    wh: Warehouse,
    last: AssetVersion | None,
    cfg: DuplicatesConfig,
    emb_version: int,
    item_ids: list[str],
) -> tuple[list[DuplicatePair], set[str] | None]:
    """Pairs of the last check between items whose text did not change, and the ids of
    new or changed items; (_, None) when the check must start over.

    Pairs between two unchanged items stay valid; every pair that involves a changed
    item is found again by searching from that item.
    """
    if last is None or last.params.get("config") != cfg.model_dump(mode="json"):
        return [], None
    before = last.params.get("embeddings_version")
    if not isinstance(before, int) or before == emb_version:
        return [], None
    con = wh.con
    old = dict(
        con.execute(f"SELECT item_id, text_hash FROM {EMBEDDINGS_ASSET}_v{before}").fetchall()
    )
    new = dict(
        con.execute(f"SELECT item_id, text_hash FROM {EMBEDDINGS_ASSET}_v{emb_version}").fetchall()
    )
    changed = {i for i, h in new.items() if old.get(i) != h}
    if len(changed) > INCREMENTAL_MAX_SHARE * max(1, len(item_ids)):
        return [], None
    rows = con.execute(
        f"SELECT item_a, item_b, title_a, title_b, cosine, text, score "
        f"FROM {DUPLICATES_ASSET}_v{last.version}"
    ).fetchall()
    kept = [
        DuplicatePair(*r)
        for r in rows
        if r[0] in new and r[1] in new and r[0] not in changed and r[1] not in changed
    ]
    return kept, changed


def _merge(
    kept: list[DuplicatePair],
    found: list[DuplicatePair],
    title_of: dict[str, str | None],
    cfg: DuplicatesConfig,
) -> list[DuplicatePair]:
    """Kept and newly found pairs, each pair once, best first, at most `max_pairs`."""
    by_key: dict[tuple[str, str], DuplicatePair] = {}
    for p in kept:
        by_key[(p.item_a, p.item_b)] = replace(
            p,
            title_a=str(title_of.get(p.item_a, p.title_a)),
            title_b=str(title_of.get(p.item_b, p.title_b)),
        )
    for p in found:
        by_key[(p.item_a, p.item_b)] = p
    pairs = sorted(by_key.values(), key=lambda p: (-p.score, p.item_a, p.item_b))
    return pairs[: cfg.max_pairs]


def _column(name: str, doc: str) -> dict[str, Any]:
    typ = "double" if name in ("cosine", "text", "score") else "string"
    return {"name": name, "type": typ, "nullable": False, "doc": doc, "pii": "none"}


def build_item_duplicates(ws: Workspace, cfg: DuplicatesConfig, build_id: str) -> dict[str, Any]:
    """Check the latest embeddings for near-duplicate items, unless already checked.

    Writes the `item_duplicates` asset: every candidate pair with its scores, and a
    quality report holding the counts and the best pairs. Call with the workspace
    write lock held.
    """
    with Warehouse(ws, read_only=True) as wh:
        emb = wh.latest(EMBEDDINGS_ASSET)
        items = wh.latest("items")
        if emb is None or items is None:
            raise NotFoundError("no item embeddings yet; run `shopkeeper features build`")
        params = {
            "config": cfg.model_dump(mode="json"),
            "embeddings_version": emb.version,
            "items_version": items.version,
        }
        last = wh.latest(DUPLICATES_ASSET)
        if built_from(last, params):
            return {
                "asset": DUPLICATES_ASSET,
                "version": last.version,
                "status": "unchanged",
                "pairs": last.row_count,
            }
        item_ids, vectors = read_embeddings(wh, emb.version)
        title_of = dict(
            wh.con.execute(f"SELECT item_id, title FROM items_v{items.version}").fetchall()
        )
        kept, changed = _reusable_pairs(wh, last, cfg, emb.version, item_ids)
    titles = [title_of.get(i) for i in item_ids]
    if changed is None:
        pairs = find_duplicate_items(item_ids, titles, vectors, cfg)
    else:
        np_ = require_ml("numpy")
        rows = np_.array([r for r, i in enumerate(item_ids) if i in changed], dtype=np_.int64)
        found = find_duplicate_items(item_ids, titles, vectors, cfg, queries=rows)
        pairs = _merge(kept, found, title_of, cfg)
    report = duplicates_report(pairs, len(item_ids))
    tmp = ws.tmp_dir / build_id
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "item_duplicates.parquet"
    rows = [p.as_dict() for p in pairs]
    names = ["item_a", "item_b", "title_a", "title_b", "cosine", "text", "score"]
    types = {n: pa.float64() if n in ("cosine", "text", "score") else pa.string() for n in names}
    pq.write_table(pa.table({n: pa.array([r[n] for r in rows], types[n]) for n in names}), data)
    parents = [(EMBEDDINGS_ASSET, emb.version, "checked"), ("items", items.version, "titles")]
    if last is not None:
        parents.append((DUPLICATES_ASSET, last.version, "previous"))
    doc = {
        "item_a": "Item id (the smaller of the two).",
        "item_b": "Item id (the larger).",
        "title_a": "Title of item_a.",
        "title_b": "Title of item_b.",
        "cosine": "Cosine of the text embeddings.",
        "text": "Title similarity, 0-100 (RapidFuzz).",
        "score": "Mean of cosine and text / 100.",
    }
    dv = DerivedVersion(
        asset=DUPLICATES_ASSET,
        kind="quality_check",
        transform="features.item_duplicates",
        params={**params, "model_id": emb.params.get("model_id")},
        row_count=len(pairs),
        schema=[_column(n, doc[n]) for n in names],
        files=[("data", data, len(pairs))],
        parents=parents,
        quality={"semantic_duplicates": {**report, "pairs": report["pairs"][:_REPORTED]}},
    )
    version = commit_derived(ws, dv, build_id)
    _log.info("checked near-duplicate items", version=version, pairs=len(pairs))
    return {"asset": DUPLICATES_ASSET, "version": version, "status": "written", "pairs": len(pairs)}
