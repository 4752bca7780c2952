"""Training data split by users for sharded data-parallel training: Parquet row groups.

`write_sharded_data` writes a folder that every node of a `torchrun` job reads:
`histories.parquet` holds one row per user (`user`: its index in the whole data set,
`items`: its item indices oldest first, `ts`: their times when known), in row groups of
at most `users_per_group` users, with the catalog size, counts and a fingerprint of the
data in the file's key-value metadata; `item_arrays.npz` holds the catalog-sized item
arrays (text vectors, attribute codes, texts) that every process keeps whole.
`read_sharded_data` gives process `rank` of `world_size` the row groups `g` with
`g % world_size == rank` and nothing else (`ParquetFile.read_row_groups`), so each
process holds only its share of the users.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.logging import get_logger
from shopkeeper.rec._data import Histories

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt

    from shopkeeper.rec._scorer import TrainingData

_log = get_logger(__name__)

HISTORIES_FILE = "histories.parquet"
ITEM_ARRAYS_FILE = "item_arrays.npz"
FORMAT = 1
"""Version of the folder layout (`shopkeeper.format` in the Parquet metadata)."""
MIN_GROUPS = 64
"""The default group size leaves at least this many row groups (when there are as many
users), so up to this many processes each get a share."""
MAX_USERS_PER_GROUP = 65_536
"""The default group size is at most this many users."""


@dataclass(frozen=True)
class Shard:
    """Which share of a data set split by users one process holds."""

    rank: int
    world_size: int
    users: npt.NDArray[np.int64]
    """Index, in the whole data set, of each local history row."""
    n_users: int
    """Users in the whole data set."""
    row_groups: tuple[int, ...]
    """The Parquet row groups this process read."""
    fingerprint: str
    """Names the whole data set (a checkpoint of other data is not resumed)."""


def histories_fingerprint(h: Histories) -> str:
    """A SHA-256 of the histories' arrays (rows, items, times)."""
    d = hashlib.sha256(np.int64(h.n_items).tobytes())
    for arr in (h.indptr, h.items, h.ts):
        if arr is not None:
            d.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    return d.hexdigest()


def default_users_per_group(n_users: int) -> int:
    """At least `MIN_GROUPS` groups where possible, at most `MAX_USERS_PER_GROUP` users each."""
    return max(1, min(MAX_USERS_PER_GROUP, -(-n_users // MIN_GROUPS)))


def write_histories(h: Histories, path: Path, *, users_per_group: int | None = None) -> int:
    """Write `h` as Parquet, one row per user, one row group per `users_per_group` users.

    Returns:
        The number of row groups written.

    Raises:
        ConfigError: `users_per_group` < 1.
    """
    per = users_per_group or default_users_per_group(h.n_users)
    if per < 1:
        raise ConfigError(f"users_per_group must be at least 1, not {per}")
    fields = [("user", pa.int64()), ("items", pa.list_(pa.int64()))]
    if h.ts is not None:
        fields.append(("ts", pa.list_(pa.int64())))
    meta = {
        "shopkeeper.format": FORMAT,
        "shopkeeper.n_users": h.n_users,
        "shopkeeper.n_items": h.n_items,
        "shopkeeper.interactions": len(h.items),
        "shopkeeper.users_per_group": per,
        "shopkeeper.fingerprint": histories_fingerprint(h),
    }
    schema = pa.schema(fields, metadata={k: str(v) for k, v in meta.items()})
    groups = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, max(h.n_users, 1), per):
            stop = min(start + per, h.n_users)
            lo, hi = int(h.indptr[start]), int(h.indptr[stop])
            offsets = pa.array((h.indptr[start : stop + 1] - lo).astype(np.int32))
            cols: dict[str, Any] = {
                "user": pa.array(np.arange(start, stop, dtype=np.int64)),
                "items": pa.ListArray.from_arrays(offsets, pa.array(h.items[lo:hi])),
            }
            if h.ts is not None:
                cols["ts"] = pa.ListArray.from_arrays(offsets, pa.array(h.ts[lo:hi]))
            writer.write_table(pa.table(cols, schema=schema), row_group_size=max(1, stop - start))
            groups += 1
    return groups


def read_histories_shard(path: Path, rank: int, world_size: int) -> tuple[Histories, Shard]:
    """Read the row groups of `path` that belong to process `rank` of `world_size`.

    Raises:
        NotFoundError: no such file.
        ConfigError: not a histories file, or fewer row groups than processes (some
            process would have no users).
    """
    if not path.is_file():
        raise NotFoundError(f"no {path.name} in {path.parent}; export the training data first")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is outside a world of {world_size}")
    pf = pq.ParquetFile(path)
    meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
    if meta.get("shopkeeper.format") != str(FORMAT):
        raise ConfigError(f"{path} is not a shopkeeper histories file (format {FORMAT})")
    n_groups = pf.num_row_groups
    if n_groups < world_size:
        raise ConfigError(
            f"{path} has {n_groups} row groups, fewer than the {world_size} processes; "
            "export it with fewer users per group"
        )
    groups = tuple(g for g in range(n_groups) if g % world_size == rank)
    table = pf.read_row_groups(list(groups))
    lengths = np.concatenate(
        [np.zeros(0, np.int64)]
        + [np.diff(c.offsets.to_numpy()) for c in table.column("items").chunks]
    ).astype(np.int64)
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    ts = _flat(table.column("ts")) if "ts" in table.column_names else None
    h = Histories(indptr, _flat(table.column("items")), int(meta["shopkeeper.n_items"]), ts)
    shard = Shard(
        rank=rank,
        world_size=world_size,
        users=table.column("user").to_numpy().astype(np.int64),
        n_users=int(meta["shopkeeper.n_users"]),
        row_groups=groups,
        fingerprint=meta["shopkeeper.fingerprint"],
    )
    _log.info(
        "read histories shard",
        rank=rank,
        world_size=world_size,
        row_groups=len(groups),
        users=h.n_users,
        interactions=len(h.items),
    )
    return h, shard


def _flat(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """The values of a list column, every row's in turn."""
    parts = [c.flatten().to_numpy() for c in column.chunks]
    return np.concatenate([np.zeros(0, np.int64), *parts]).astype(np.int64)


def item_arrays(data: TrainingData) -> dict[str, Any]:
    """The catalog-sized arrays of `data`, by name, for `np.savez`."""
    arrays: dict[str, Any] = {}
    if data.item_vectors is not None:
        arrays["vectors"] = data.item_vectors
    if data.item_attributes is not None:
        arrays["attributes"] = data.item_attributes
    if data.item_texts is not None:
        arrays["texts"] = np.array(data.item_texts, dtype=str)
    return arrays


def unpack_item_arrays(z: Any) -> dict[str, Any]:
    """`TrainingData` keyword arguments from what `item_arrays` saved."""
    files = set(z.files)
    return {
        "item_vectors": z["vectors"].astype(np.float32) if "vectors" in files else None,
        "item_attributes": z["attributes"].astype(np.int64) if "attributes" in files else None,
        "item_texts": z["texts"].tolist() if "texts" in files else None,
    }


def write_sharded_data(
    data: TrainingData, folder: Path, *, users_per_group: int | None = None
) -> int:
    """Write `folder/histories.parquet` and `folder/item_arrays.npz`; returns the row groups."""
    folder.mkdir(parents=True, exist_ok=True)
    groups = write_histories(
        data.histories, folder / HISTORIES_FILE, users_per_group=users_per_group
    )
    np.savez(folder / ITEM_ARRAYS_FILE, **item_arrays(data))
    return groups


def read_sharded_data(
    folder: Path,
    rank: int,
    world_size: int,
    *,
    time_budget_s: float | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainingData:
    """This process's `TrainingData`: its users' histories, every item array, its `Shard`."""
    from shopkeeper.rec._scorer import TrainingData

    h, shard = read_histories_shard(folder / HISTORIES_FILE, rank, world_size)
    if not (folder / ITEM_ARRAYS_FILE).is_file():
        raise NotFoundError(f"no {ITEM_ARRAYS_FILE} in {folder}; export the training data first")
    with np.load(folder / ITEM_ARRAYS_FILE, allow_pickle=False) as z:
        items = unpack_item_arrays(z)
    return TrainingData(
        h, time_budget_s=time_budget_s, checkpoint_dir=checkpoint_dir, shard=shard, **items
    )
