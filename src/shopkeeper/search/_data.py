"""Judged queries from the warehouse and a deterministic query-disjoint split.

A query's split depends only on its id and the seed (a keyed BLAKE2 hash mapped to
[0, 1)), so adding queries never moves an existing one between splits, and no query
text is in two splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from shopkeeper.errors import NotFoundError
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.warehouse import Workspace

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


@dataclass
class Judged:
    """Queries with graded judgments, and the judged (query, item) pairs."""

    query_ids: list[str]
    queries: list[str]
    pair_query: npt.NDArray[np.int64]
    """Index into `query_ids` of each judged pair."""
    pair_item: list[str]
    pair_relevance: npt.NDArray[np.float64]
    queries_version: int = 0
    judgments_version: int = 0

    def subset(self, mask: npt.NDArray[np.bool_]) -> Judged:
        """The queries where `mask` holds, with their pairs (query indices renumbered)."""
        keep = np.nonzero(mask)[0]
        new = np.full(len(self.query_ids), -1, dtype=np.int64)
        new[keep] = np.arange(len(keep))
        pairs = mask[self.pair_query]
        return Judged(
            [self.query_ids[i] for i in keep],
            [self.queries[i] for i in keep],
            new[self.pair_query[pairs]],
            [it for it, p in zip(self.pair_item, pairs.tolist(), strict=True) if p],
            self.pair_relevance[pairs],
            self.queries_version,
            self.judgments_version,
        )


def load_judged(ws: Workspace) -> Judged:
    """The latest queries and judgments (pairs of unknown queries are left out).

    Raises:
        NotFoundError: the workspace has no queries or no judgments.
    """
    with Warehouse(ws, read_only=True) as wh:
        qv, jv = wh.latest("queries"), wh.latest("judgments")
        if qv is None or jv is None:
            raise NotFoundError("no queries and judgments yet; ingest them first")
        queries = wh.con.sql(
            f"SELECT query_id, query FROM queries_v{qv.version} "
            f"WHERE query_id IN (SELECT query_id FROM judgments_v{jv.version}) ORDER BY query_id"
        ).to_arrow_table()
        pairs = wh.con.sql(
            f"SELECT j.query_id, j.item_id, CAST(j.relevance AS DOUBLE) AS relevance "
            f"FROM judgments_v{jv.version} j JOIN queries_v{qv.version} q USING (query_id) "
            f"ORDER BY j.query_id, j.item_id"
        ).to_arrow_table()
    query_ids = queries.column("query_id").to_pylist()
    pos = np.searchsorted(
        np.array(query_ids, dtype=object), np.array(pairs.column("query_id").to_pylist(), object)
    )
    return Judged(
        query_ids,
        queries.column("query").to_pylist(),
        np.asarray(pos, dtype=np.int64),
        pairs.column("item_id").to_pylist(),
        pairs.column("relevance").to_numpy().astype(np.float64),
        qv.version,
        jv.version,
    )


def split_queries(
    query_ids: list[str], seed: int, validation: float, test: float
) -> npt.NDArray[np.str_]:
    """`train`, `validation` or `test` for each query id, from a seeded hash of the id.

    >>> split_queries(["a", "b", "c", "d"], 0, 0.25, 0.25).tolist()
    ['test', 'train', 'train', 'test']
    """
    key = seed.to_bytes(8, "little")
    u = np.array(
        [
            int.from_bytes(hashlib.blake2b(q.encode(), digest_size=8, key=key).digest(), "little")
            for q in query_ids
        ],
        dtype=np.float64,
    ) / float(2**64)
    return np.where(u < test, "test", np.where(u < test + validation, "validation", "train"))
