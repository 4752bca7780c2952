"""MovieLens 100K (`ml-100k`): movies, users and ratings -> items, users, events, reviews.

The folder holds `u.item` (movies, `|`-separated, latin-1), `u.user` (`|`-separated
demographics) and `u.data` (tab-separated `user_id, item_id, rating, unix seconds`);
none has a header line. A single ratings file (`u.data`, `u1.base.gz`, ...) gives
events and reviews only; `u.item` or `u.user` alone gives that one asset.

Each rating becomes a `rating` event (`value` = the rating) and a review without
text. A user's `created_at` is the time of their first rating when the ratings
are loaded with them (null otherwise): MovieLens records no sign-up time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopkeeper.errors import ConfigError
from shopkeeper.ingest._mapping import (
    ColumnSource,
    ColumnSpec,
    MappingConfig,
    ReadOptions,
    quote_ident,
    sql_literal,
)
from shopkeeper.ingest._mapping import column_source as _col
from shopkeeper.ingest._mapping import sql_source as _src
from shopkeeper.ingest._plan import AssetPlan, ExtraRule

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.ingest._readers import StagedTable
    from shopkeeper.ingest.adapters._base import AdapterContext
    from shopkeeper.schema import AssetKind

GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""The 19 genre flags of `u.item`, in file order (as listed in `u.genre`)."""
RATING_RANGE = (1.0, 5.0)
"""MovieLens ratings are whole stars from 1 to 5."""
RELEASE_DATE_FORMAT = "%d-%b-%Y"
"""`u.item` release dates look like `01-Jan-1995`."""
RELEASE_DATA_START = "1888-01-01T00:00:00+00:00"
"""Release dates (items' `updated_at`) go back to the early cinema; 1990 would reject 333."""

_RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
_ITEM_COLUMNS = ["movie_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES]
_USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip_code"]
_RATINGS_READ = ReadOptions(delimiter="\t", header=False, quote="", column_names=_RATING_COLUMNS)
_ITEMS_READ = ReadOptions(
    delimiter="|", header=False, quote="", encoding="latin-1", column_names=_ITEM_COLUMNS
)
_USERS_READ = ReadOptions(delimiter="|", header=False, quote="", column_names=_USER_COLUMNS)
_YEAR_IN_TITLE = r"\(([0-9]{4})\)\s*$"


def _text(name: str) -> str:
    return f"nullif(trim(CAST({quote_ident(name)} AS VARCHAR)), '')"


def _flag_set(genre: str) -> str:
    return f"trim(CAST({quote_ident(genre)} AS VARCHAR)) = '1'"


def genre_tags_sql() -> str:
    """SQL joining the names of the genres flagged 1 with `|` (`unknown` left out).

    >>> genre_tags_sql().startswith("concat_ws('|', CASE WHEN trim(CAST(\\"Action\\"")
    True
    """
    parts = [f"CASE WHEN {_flag_set(g)} THEN {sql_literal(g)} END" for g in GENRES[1:]]
    return f"concat_ws('|', {', '.join(parts)})"


def first_genre_sql() -> str:
    """SQL for the first flagged genre in `u.genre` order (`unknown` left out), else NULL."""
    whens = " ".join(f"WHEN {_flag_set(g)} THEN {sql_literal(g)}" for g in GENRES[1:])
    return f"CASE {whens} END"


def _rating_rule(column: str) -> ExtraRule:
    lo, hi = RATING_RANGE
    rating = 'TRY_CAST(trim(CAST("rating" AS VARCHAR)) AS DOUBLE)'
    return ExtraRule("out_of_range_rating", f"{rating} NOT BETWEEN {lo} AND {hi}", column)


def _check_columns(staged: StagedTable, expected: list[str], what: str) -> None:
    if staged.columns != expected:
        raise ConfigError(
            f"not a MovieLens {what} file: read columns {staged.columns}, expected {expected}",
            path=staged.source.display,
        )


def _locate(path: Path) -> tuple[Path | None, Path | None, Path | None]:
    """(ratings, items, users) files for a folder or a single file."""
    if path.is_dir():
        found = [path / n if (path / n).is_file() else None for n in ("u.data", "u.item", "u.user")]
        if found[0] is None and found[1] is None and found[2] is None:
            raise ConfigError(
                "movielens: the folder holds none of u.data, u.item, u.user", path=str(path)
            )
        return found[0], found[1], found[2]
    name = path.name.lower()
    if name.startswith("u.item"):
        return None, path, None
    if name.startswith("u.user"):
        return None, None, path
    return path, None, None


class MovieLensAdapter:
    """Plans items, users, rating events and reviews from an `ml-100k` folder or file."""

    name = "movielens"

    def plan(
        self,
        ctx: AdapterContext,
        path: Path,
        kind: AssetKind | None,
        mapping: MappingConfig | None,
    ) -> list[AssetPlan]:
        """Stage the files found under `path`; plan items, users, events, then reviews.

        Raises:
            ConfigError: no MovieLens file at `path`, a file of another layout, or no
                asset of `kind`.
        """
        ratings_path, items_path, users_path = _locate(path)
        cleaning = mapping.cleaning if mapping else {}
        params: dict[str, Any] = {
            "release_date_format": RELEASE_DATE_FORMAT,
            "rating_range": list(RATING_RANGE),
        }
        plans: list[AssetPlan] = []
        ratings = None
        if ratings_path is not None:
            ratings = ctx.stage(ratings_path, _RATINGS_READ)
            _check_columns(ratings, _RATING_COLUMNS, "ratings")
        if items_path is not None:
            plans.append(self._items(ctx, items_path, params, cleaning))
        if users_path is not None:
            plans.append(self._users(ctx, users_path, ratings, params, cleaning))
        if ratings is not None:
            plans.extend(self._ratings(ratings, params, cleaning))
        wanted = [p for p in plans if kind is None or p.kind == kind]
        if not wanted:
            raise ConfigError(f"movielens: {path.name} yields no {kind} asset", path=str(path))
        return wanted

    @staticmethod
    def _items(
        ctx: AdapterContext, path: Path, params: dict[str, Any], cleaning: dict[str, Any]
    ) -> AssetPlan:
        staged = ctx.stage(path, _ITEMS_READ)
        _check_columns(staged, _ITEM_COLUMNS, "u.item")
        title = quote_ident("title")
        attributes = (
            f"CAST(json_object('imdb_url', {_text('imdb_url')}, 'year', TRY_CAST(regexp_extract("
            f"CAST({title} AS VARCHAR), {sql_literal(_YEAR_IN_TITLE)}, 1) AS INTEGER)) AS VARCHAR)"
        )
        return AssetPlan(
            asset="items",
            kind="items",
            stage=staged,
            transform="movielens:items",
            sources={
                "item_id": _col("movie_id"),
                "title": _col("title"),
                "category_path": _src(first_genre_sql(), *GENRES[1:]),
                "tags": _src(genre_tags_sql(), *GENRES[1:], separator="|"),
                "attributes": _src(attributes, "title", "imdb_url"),
                "updated_at": _col("release_date", format=RELEASE_DATE_FORMAT),
            },
            params=params,
            pack_attributes=False,
            cleaning={"data_start": RELEASE_DATA_START, **cleaning},
        )

    @staticmethod
    def _users(
        ctx: AdapterContext,
        path: Path,
        ratings: StagedTable | None,
        params: dict[str, Any],
        cleaning: dict[str, Any],
    ) -> AssetPlan:
        staged = ctx.stage(path, _USERS_READ)
        _check_columns(staged, _USER_COLUMNS, "u.user")
        attributes = (
            f"CAST(json_object('age', TRY_CAST({_text('age')} AS INTEGER), 'gender', "
            f"{_text('gender')}, 'occupation', {_text('occupation')}, 'zip_code', "
            f"{_text('zip_code')}) AS VARCHAR)"
        )
        sources = {
            "user_id": _col("user_id"),
            "attributes": _src(attributes, "age", "gender", "occupation", "zip_code"),
        }
        if ratings is not None:
            first = f"{ratings.table}_first_rating"
            ctx.con.execute(
                f"CREATE TEMP TABLE {first} AS SELECT trim(user_id) AS _uid, "
                f'min(TRY_CAST(trim("timestamp") AS BIGINT)) AS _first '
                f"FROM {ratings.table} GROUP BY 1"
            )
            sources["created_at"] = _src(
                f'SELECT _first FROM {first} WHERE _uid = trim(CAST("user_id" AS VARCHAR))',
                "user_id",
                unit="s",
            )
        return AssetPlan(
            asset="users",
            kind="users",
            stage=staged,
            transform="movielens:users",
            sources=sources,
            params={**params, "created_at": "first rating" if ratings else None},
            pack_attributes=False,
            cleaning=cleaning,
        )

    @staticmethod
    def _ratings(
        staged: StagedTable, params: dict[str, Any], cleaning: dict[str, Any]
    ) -> list[AssetPlan]:
        ts = _col("timestamp", unit="s")
        events = AssetPlan(
            asset="events",
            kind="events",
            stage=staged,
            transform="movielens:events",
            sources={
                "user_id": _col("user_id"),
                "item_id": _col("item_id"),
                "event_type": ColumnSource("'rating'", ColumnSpec(constant="rating"), ()),
                "ts": ts,
                "value": _col("rating"),
            },
            params=params,
            extra_rules=[_rating_rule("value")],
            depends_on_items=True,
            cleaning=cleaning,
        )
        reviews = AssetPlan(
            asset="reviews",
            kind="reviews",
            stage=staged,
            transform="movielens:reviews",
            sources={
                "user_id": _col("user_id"),
                "item_id": _col("item_id"),
                "rating": _col("rating"),
                "ts": ts,
            },
            params=params,
            extra_rules=[_rating_rule("rating")],
            depends_on_items=True,
            cleaning=cleaning,
        )
        return [events, reviews]
