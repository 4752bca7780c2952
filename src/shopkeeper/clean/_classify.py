"""Assign every staged row exactly one fate: clean, quarantined (with a reason) or duplicate.

Two passes in DuckDB:
1. `mapped`: normalize and parse each canonical column; flag exact duplicates and
   row-local failures (missing, unparseable, invalid codes, out-of-range values).
2. `classified`: rules that need the whole load (unknown items, price outliers,
   bots, near-duplicates, latest-wins), computed only over rows that passed 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from shopkeeper.clean._columns import ColumnSql, column_sql, pack_attributes_sql
from shopkeeper.clean._config import CleaningConfig
from shopkeeper.clean._reasons import Reason, reason_code
from shopkeeper.clean._text import norm_id
from shopkeeper.ingest import AssetPlan, quote_ident, sql_list, sql_literal
from shopkeeper.ingest._plan import UPSERT_KEYS
from shopkeeper.schema import columns, duckdb_type

if TYPE_CHECKING:
    import duckdb

    from shopkeeper.clean._pii import Pseudonymizer

_PSEUDO_KEY = '"_pseudo_user"'
"""The mapped `user_id` expression when ids are pseudonymized: a dense integer key."""
_PRICE_GROUP = {"events": "item_id", "items": "category_path"}
_TS_COLUMN = {"events": "ts", "reviews": "ts", "items": "updated_at", "users": "created_at"}


class SqlRunner(Protocol):
    """Where `classify` runs its statements: a DuckDB connection, or the Spark runner."""

    def execute(self, query: str, /) -> object:
        """Run one statement of the cleaning SQL (DuckDB dialect)."""
        ...


@dataclass(frozen=True)
class CleanedLoad:
    """Names of the temp relations a plan was cleaned into."""

    classified: str
    """A view: canonical columns + `_ord`, `_reason`, `_column`, `_pii_*` flags."""
    pii_columns: tuple[str, ...]
    tables: tuple[str, ...] = ()
    """The temp tables behind the view."""
    reasons: str | None = None
    """A narrower view, when there is one: `_ord`, `_reason`, `_column` and the `_pii_*`
    flags only, without the join that puts the pseudonyms back (DuckDB keeps a LEFT JOIN
    whose columns nothing reads)."""

    @property
    def outcomes(self) -> str:
        """The view to read `_ord`, `_reason`, `_column` and the `_pii_*` flags from."""
        return self.reasons or self.classified

    def release(self, con: duckdb.DuckDBPyConnection) -> None:
        """Drop the views and the tables behind them."""
        con.execute(f"DROP VIEW IF EXISTS {self.classified}")
        if self.reasons:
            con.execute(f"DROP VIEW IF EXISTS {self.reasons}")
        for t in self.tables:
            con.execute(f"DROP TABLE IF EXISTS {t}")


def _column_sqls(plan: AssetPlan, pseudo: Pseudonymizer) -> dict[str, ColumnSql]:
    out: dict[str, ColumnSql] = {}
    for col in columns(plan.kind):
        src = plan.sources.get(col.name)
        if src is not None:
            out[col.name] = column_sql(col, src, pseudo)
    if plan.kind in ("items", "users") and "attributes" not in out and plan.pack_attributes:
        used = {c for s in plan.sources.values() for c in s.source_columns}
        rest = [(c, quote_ident(c)) for c in plan.stage.columns if c not in used]
        if rest:
            out["attributes"] = ColumnSql(pack_attributes_sql(rest, mask=plan.kind == "users"))
    if plan.base_currency and "price" in out and "currency" in out:
        cur = out["currency"].expr
        whens = " ".join(
            f"WHEN {sql_literal(k.upper())} THEN {v!r}" for k, v in plan.fx_rates.items()
        )
        rate = f"(CASE {cur} WHEN {sql_literal(plan.base_currency.upper())} THEN 1.0 {whens} END)"
        # An unknown rate leaves the price as it is; the unknown_currency rule catches it.
        out["price"].expr = f"({out['price'].expr}) * coalesce({rate}, 1.0)"
        out["_fx_rate"] = ColumnSql(rate)
        out["currency"] = ColumnSql(
            f"CASE WHEN {rate} IS NOT NULL "
            f"THEN {sql_literal(plan.base_currency.upper())} ELSE {cur} END"
        )
    return out


def _row_rules(
    plan: AssetPlan, sqls: dict[str, ColumnSql], cfg: CleaningConfig, now: datetime
) -> list[tuple[str, str, str | None]]:
    """(condition, code, column) in precedence order, over the mapped table."""
    rules: list[tuple[str, str, str | None]] = []
    for col in columns(plan.kind):
        c = quote_ident(col.name)
        s = sqls.get(col.name)
        if col.required and s is not None and s.raw is None:
            rules.append((f"{c} IS NULL", reason_code(Reason.MISSING, col.name), col.name))
        elif col.required and s is not None:
            rules.append(
                (f'"_raw_{col.name}" IS NULL', reason_code(Reason.MISSING, col.name), col.name)
            )
    for col in columns(plan.kind):
        s = sqls.get(col.name)
        if s is not None and s.raw is not None:
            rules.append(
                (
                    f'"_raw_{col.name}" IS NOT NULL AND {quote_ident(col.name)} IS NULL',
                    reason_code(Reason.UNPARSEABLE, col.name),
                    col.name,
                )
            )
    for col in columns(plan.kind):
        s = sqls.get(col.name)
        if s is not None and s.encoding_check is not None:
            rules.append(
                (f'coalesce("_enc_{col.name}", false)', Reason.INVALID_ENCODING.value, col.name)
            )
    if "event_type" in sqls:
        rules.append(
            (
                # A constant IN list: half the cost of a regex alternation (DuckDB 2.0).
                f"NOT event_type IN ({sql_list(cfg.event_types)})" if cfg.event_types else "true",
                Reason.INVALID_EVENT_TYPE.value,
                "event_type",
            )
        )
    if "currency" in sqls:
        rules.append(
            (
                "currency IS NOT NULL AND NOT regexp_matches(currency, '^[A-Z]{3}$')",
                Reason.INVALID_CURRENCY.value,
                "currency",
            )
        )
    if "_fx_rate" in sqls:
        rules.append(
            ('price IS NOT NULL AND "_fx_rate" IS NULL', Reason.UNKNOWN_CURRENCY.value, "currency")
        )
    rules.extend(
        (f'coalesce("_x{i}", false)', r.code, r.column) for i, r in enumerate(plan.extra_rules)
    )
    ts = _TS_COLUMN.get(plan.kind)
    if ts and ts in sqls:
        horizon = now + timedelta(hours=cfg.future_tolerance_hours)
        rules.append(
            (
                f"{ts} > TIMESTAMPTZ {sql_literal(horizon.isoformat())}",
                Reason.FUTURE_TIMESTAMP.value,
                ts,
            )
        )
        rules.append(
            (
                f"{ts} < TIMESTAMPTZ {sql_literal(cfg.data_start.isoformat())}",
                Reason.TIMESTAMP_BEFORE_START.value,
                ts,
            )
        )
    if "price" in sqls:
        rules.append(("price <= 0", Reason.NONPOSITIVE_PRICE.value, "price"))
    if "quantity" in sqls:
        rules.append(
            (f"abs(quantity) > {cfg.max_abs_quantity}", Reason.ABSURD_QUANTITY.value, "quantity")
        )
    return rules


def _case(rules: list[tuple[str, str, str | None]], first: str | None = None) -> tuple[str, str]:
    """The reason CASE, and the column CASE (to evaluate only where a reason was found)."""
    whens: list[tuple[str, str, str | None]] = (
        [(first, Reason.EXACT_DUPLICATE.value, None)] if first else []
    )
    whens += rules
    if not whens:
        return "NULL::VARCHAR", "NULL::VARCHAR"
    reason = " ".join(f"WHEN {c} THEN {sql_literal(code)}" for c, code, _ in whens)
    column = " ".join(f"WHEN {c} THEN {sql_literal(col)}" for c, _, col in whens)
    return f"CASE {reason} END", f"CASE {column} END"


def _layered_sources(plan: AssetPlan) -> tuple[AssetPlan, list[str]]:
    """Evaluate each source expression once, as a VARCHAR column `_r_<name>` of a lower layer.

    The normalize/parse SQL mentions its input several times; pointing it at a
    column instead of the (possibly costly) source expression keeps that cheap.
    """
    layer: list[str] = []
    sources = {}
    for name, src in plan.sources.items():
        if src.spec.constant is not None:
            sources[name] = src
            continue
        alias = f"_r_{name}"
        layer.append(f"CAST({src.raw_sql} AS VARCHAR) AS {quote_ident(alias)}")
        sources[name] = replace(src, raw_sql=quote_ident(alias))
    return replace(plan, sources=sources), layer


def build_mapped_sql(
    plan: AssetPlan, pseudo: Pseudonymizer, cfg: CleaningConfig, now: datetime, table: str
) -> tuple[list[str], dict[str, ColumnSql]]:
    """SQL statements creating the mapped table: parsed columns, row-local reason, dup flag.

    Work that does not depend on the asset is shared through tables named after the
    stage: exact-duplicate row ordinals (`<stage>_dup`), computed once per file.
    Pseudonyms are computed once per distinct raw id (`<table>_pmap`) and joined; the
    mapped table holds each pseudonym's dense integer key (`_u`) in `user_id`, not the
    32-character text (`classify` puts the text back in its view).
    """
    stage = plan.stage
    layered, layer = _layered_sources(plan)
    sqls = _column_sqls(layered, pseudo)
    part = ", ".join(quote_ident(c) for c in stage.columns)
    stmts = [
        # Exact duplicates: group by a row hash to find candidates, then compare the
        # candidates' full values (a hash collision never makes a row a duplicate). The
        # hashes are computed once, into a narrow (row, hash) relation that both the
        # grouping and the candidates' lookup read (measured alone: 1.62 -> 1.21 s at 5M
        # rows, 10.1 -> 9.0 s at 20M, where the wide staged table has spilled to disk).
        f"CREATE TEMP TABLE IF NOT EXISTS {stage.table}_dup AS "
        f"WITH rh AS MATERIALIZED (SELECT rowid AS _r, hash({part}) AS _h FROM {stage.table}), "
        f"h AS (SELECT _h FROM rh GROUP BY 1 HAVING count(*) > 1), "
        f"c AS (SELECT s.rowid AS _r, s.* FROM {stage.table} s SEMI JOIN "
        f"(SELECT _r FROM rh SEMI JOIN h ON rh._h = h._h) k ON s.rowid = k._r) "
        f"SELECT _r + 1 AS _o FROM (SELECT _r, row_number() OVER (PARTITION BY {part} "
        f"ORDER BY _r) AS _n FROM c) WHERE _n > 1"
    ]
    joins = f" LEFT JOIN {stage.table}_dup _d ON _d._o = s._ord"
    user = plan.sources.get("user_id")
    if user is not None and "user_id" in sqls:
        # Keyed on the raw text, so each row pays one hash lookup; norm_id runs per distinct id.
        key = f"CAST({user.raw_sql} AS VARCHAR)"
        # Raw ids that normalize alike ("17850", "17850.0") share a pseudonym and a key.
        stmts.append(
            f"CREATE TEMP TABLE {table}_pmap AS SELECT _k, _p, CASE WHEN _p IS NOT NULL "
            f"THEN dense_rank() OVER (ORDER BY _p) END AS _u FROM (SELECT _k, "
            f"{pseudo.sql(norm_id('_k'))} AS _p FROM (SELECT DISTINCT {key} AS _k "
            f"FROM {stage.table}) WHERE _k IS NOT NULL)"
        )
        joins += f" LEFT JOIN {table}_pmap _pm ON _pm._k = {key}"
        layer.append(f"_pm._u AS {_PSEUDO_KEY}")
        sqls["user_id"] = ColumnSql(_PSEUDO_KEY)
    pre = "".join(f', {s.pre} AS "_p_{name}"' for name, s in sqls.items() if s.pre is not None)
    inner: list[str] = ["_ord"]
    for name, s in sqls.items():
        inner.append(f"{s.expr} AS {quote_ident(name)}")
        if s.raw is not None:
            inner.append(f'{s.raw} AS "_raw_{name}"')
        if s.encoding_check is not None:
            inner.append(f'{s.encoding_check} AS "_enc_{name}"')
    inner.extend(f'({r.condition}) AS "_x{i}"' for i, r in enumerate(plan.extra_rules))
    inner.append("_dup")
    reason, column = _case(_row_rules(plan, sqls, cfg, now), first="_dup")
    where = f" WHERE {plan.where}" if plan.where else ""
    base = (
        f"(SELECT s.*, _d._o IS NOT NULL AS _dup{''.join(', ' + x for x in layer)} "
        f"FROM {stage.ordinal_sql()}{joins}{where})"
    )
    base = f"(SELECT *{pre} FROM {base})"
    flags = "".join(
        f", {flag} AS {quote_ident(alias)}"
        for s in sqls.values()
        for alias, flag in s.pii_flags.items()
    )
    # Most rows pass: the column CASE repeats every test, so it runs only on flagged rows.
    # Only what later steps read is stored (the raw text and rule inputs are not).
    keep = ["_ord", *(quote_ident(n) for n in sqls if not n.startswith("_"))]
    keep += [quote_ident(a) for s in sqls.values() for a in s.pii_flags]
    # A plain table, not TEMP: it goes where the stage is, in the connection's default
    # database (in memory, or compressed in the load's work file for a large source).
    stmts.append(
        f"CREATE TABLE {table} AS SELECT {', '.join(keep)}, _r1, CASE WHEN _r1 IS NOT NULL "
        f"THEN {column} END AS _c1 FROM (SELECT *{flags}, {reason} AS _r1 "
        f"FROM (SELECT {', '.join(inner)} FROM {base}))"
    )
    return stmts, sqls


def _set_rules_sql(
    plan: AssetPlan, cfg: CleaningConfig, present: set[str], items_source: str | None
) -> tuple[list[str], list[str], str]:
    """CTEs, joins and the CASE of the set-based rules, over `ok` (rows that passed)."""
    ctes: list[str] = []
    joins: list[str] = []
    whens: list[str] = []
    if items_source and "item_id" in present and plan.kind in ("events", "reviews", "judgments"):
        ctes.append(f"known AS (SELECT DISTINCT item_id AS _kid FROM {items_source})")
        joins.append("LEFT JOIN known ON ok.item_id = known._kid")
        whens.append(f"WHEN known._kid IS NULL THEN '{Reason.UNKNOWN_ITEM.value}'")
    group = _PRICE_GROUP.get(plan.kind)
    if group and group in present and "price" in present:
        # Exact quartiles: the k-th smallest log price is the distinct value whose running
        # count reaches k. Grouping by (group, price) first leaves a few rows per item to
        # sort, and a hash aggregate spills to disk, so 20M-row loads fit.
        def at(k: str) -> str:
            return f"(_cum - _c < {k} AND _cum >= {k})"

        lo, hi = "floor((_n + 1) / 2)", "ceil((_n + 1) / 2)"
        ctes.append(
            f"pstats AS (SELECT _pg, _med AS _pmed, (_q3 - _q1) / 1.349 AS _psd FROM (SELECT _pg, "
            f"avg(_lp) FILTER (WHERE {at(lo)} OR {at(hi)}) AS _med, "
            f"max(_lp) FILTER (WHERE {at('greatest(1, ceil(0.25 * _n))')}) AS _q1, "
            f"max(_lp) FILTER (WHERE {at('greatest(1, ceil(0.75 * _n))')}) AS _q3 FROM (SELECT "
            f"_pg, _lp, _c, sum(_c) OVER (PARTITION BY _pg ORDER BY _lp) AS _cum, "
            f"sum(_c) OVER (PARTITION BY _pg) AS _n FROM (SELECT {group} AS _pg, ln(price) AS _lp, "
            f"count(*) AS _c FROM ok WHERE price > 0 AND {group} IS NOT NULL GROUP BY 1, 2)) "
            f"WHERE _n >= {cfg.price_outlier_min_observations} GROUP BY 1))"
        )
        joins.append(f"LEFT JOIN pstats ON ok.{group} = pstats._pg")
        threshold = f"greatest({cfg.price_outlier_k} * pstats._psd, ln({cfg.price_outlier_factor}))"
        whens.append(
            f"WHEN pstats._pg IS NOT NULL AND price > 0 AND "
            f"abs(ln(price) - pstats._pmed) > {threshold} "
            f"THEN '{Reason.PRICE_OUTLIER.value}'"
        )
    if plan.kind == "events" and {"user_id", "ts", "event_type"} <= present:
        # More than `max` events in any 60 seconds (a sliding window, so a burst across
        # a minute boundary counts whole). Such a window lies within two adjacent
        # calendar minutes, so only users over `max` in some pair of them are windowed.
        # The minute counts group by a 64-bit hash of the user id, not the 32-character
        # pseudonym (a third cheaper); a collision only adds a candidate, and the window
        # partitions by the id itself. `ok` (a projection of a table) is read twice
        # rather than shared through a CTE, which DuckDB would materialize.
        cap = cfg.bot_max_events_per_minute
        types = f"event_type IN ({sql_list(cfg.bot_event_types)})"
        ctes.append(
            f"bots AS (WITH m AS (SELECT hash(user_id) AS _h, floor(epoch(ts) / 60) AS _m, "
            f"count(*) AS n FROM ok WHERE {types} GROUP BY ALL), "
            f"cand AS (SELECT DISTINCT a._h FROM m a LEFT JOIN m b ON b._h = a._h "
            f"AND b._m = a._m + 1 WHERE a.n + coalesce(b.n, 0) > {cap}) "
            f"SELECT DISTINCT user_id AS _bu FROM (SELECT ok.user_id, count(*) OVER (PARTITION BY "
            f"ok.user_id ORDER BY ok.ts RANGE BETWEEN INTERVAL 59999999 MICROSECONDS PRECEDING "
            f"AND CURRENT ROW) AS _w FROM ok SEMI JOIN cand ON cand._h = hash(ok.user_id) "
            f"WHERE {types}) WHERE _w > {cap})"
        )
        joins.append("LEFT JOIN bots ON ok.user_id = bots._bu")
        whens.append(f"WHEN bots._bu IS NOT NULL THEN '{Reason.BOT_USER.value}'")
    case = f"CASE {' '.join(whens)} END" if whens else "NULL::VARCHAR"
    return ctes, joins, case


def _dedup_case(plan: AssetPlan, cfg: CleaningConfig, present: set[str]) -> tuple[str, str]:
    """CASE for latest-wins (keyed kinds) over passing rows, and an extra window column."""
    key = UPSERT_KEYS.get(plan.kind)
    if key and set(key) <= present:
        order = _TS_COLUMN.get(plan.kind)
        order_sql = f"{order} DESC NULLS LAST, _ord DESC" if order in present else "_ord DESC"
        keys = ", ".join(key)
        reason = (
            f"CASE WHEN _r2 IS NULL AND row_number() OVER (PARTITION BY {keys}, "
            f"_r2 IS NULL ORDER BY {order_sql}) > 1 THEN '{Reason.SUPERSEDED.value}' END"
        )
        extra = ""
        if plan.kind == "users" and "created_at" in present:
            extra = "min(created_at) OVER (PARTITION BY user_id, _r2 IS NULL) AS _first_seen"
        return reason, extra
    return "NULL::VARCHAR", ""


def _near_duplicates_sql(
    plan: AssetPlan, cfg: CleaningConfig, present: set[str], ok: str, flagged: str
) -> str | None:
    """(_ord, _r, _c) of near-duplicate events among rows of `ok` not in `flagged`.

    Only keys seen more than once can repeat, so a hash aggregate over a 64-bit hash
    of the key picks those first (a collision only adds candidates) and the window,
    partitioned by the key itself, sorts just their rows. `ok` is a projection of a
    table, read twice: cheaper than materializing a shared CTE.
    """
    window = cfg.near_duplicate_window_seconds
    need = {"user_id", "item_id", "event_type", "ts"}
    if plan.kind != "events" or window <= 0 or not need <= present:
        return None
    near = sql_list(cfg.near_duplicate_event_types)
    cand = (
        f"(SELECT ok._ord, user_id, item_id, event_type, ts, "
        f"hash(user_id, item_id, event_type) AS _k FROM {ok} ok "
        f"ANTI JOIN {flagged} _f ON _f._ord = ok._ord WHERE event_type IN ({near}))"
    )
    multi = f"(SELECT _k FROM {cand} GROUP BY _k HAVING count(*) > 1)"
    gap = (
        "epoch(c.ts) - epoch(lag(c.ts) OVER (PARTITION BY c.user_id, c.item_id, c.event_type "
        "ORDER BY c.ts, c._ord))"
    )
    return (
        f"SELECT _ord, '{Reason.NEAR_DUPLICATE.value}' AS _r, NULL::VARCHAR AS _c FROM "
        f"(SELECT c._ord, {gap} AS _gap FROM {cand} c SEMI JOIN {multi} k ON c._k = k._k) "
        f"WHERE _gap <= {window}"
    )


_NARROW = (
    "user_id",
    "item_id",
    "event_type",
    "ts",
    "price",
    "category_path",
    "updated_at",
    "created_at",
    "query_id",
)
"""Columns the set rules read; they run on this narrow projection, keyed by `_ord`."""


def classify(
    con: SqlRunner,
    plan: AssetPlan,
    pseudo: Pseudonymizer,
    now: datetime,
    items_source: str | None,
    table: str,
) -> CleanedLoad:
    """Clean `plan` into temp table `table` (see module docstring).

    The set rules and windows work on a narrow projection of the passing rows and
    produce the reasons of the few rows they flag; one join puts them back.

    Args:
        con: runs the statements: a DuckDB connection, or the Spark engine's runner,
            which transpiles them (`shopkeeper.clean._spark`).
        items_source: a SQL relation of known item ids, when the unknown-item rule applies.
    """
    cfg = CleaningConfig.model_validate(plan.cleaning)
    # Rows carry `_ord`, so nothing below needs insertion order; without it DuckDB buffers
    # far less and spills more readily (staging, which does need it, is already done).
    con.execute("SET preserve_insertion_order = false")
    mapped = f"{table}_m"
    stmts, sqls = build_mapped_sql(plan, pseudo, cfg, now, mapped)
    for stmt in stmts:
        con.execute(stmt)
    present = {n for n in sqls if not n.startswith("_")}
    if not cfg.check_unknown_items:
        items_source = None
    ctes, joins, case2 = _set_rules_sql(plan, cfg, present, items_source)
    dedup, extra = _dedup_case(plan, cfg, present)
    narrow = ", ".join(["_ord", *(quote_ident(c) for c in _NARROW if c in present)])
    stage2 = f"SELECT ok.*, {case2} AS _r2 FROM ok {' '.join(joins)}"
    extra_sql = f", {extra}" if extra else ""
    column = (
        "CASE _r2 WHEN 'unknown_item' THEN 'item_id' WHEN 'price_outlier' THEN 'price' "
        "WHEN 'bot_user' THEN 'user_id' END"
    )
    keep_all = " OR _first_seen IS NOT NULL" if extra else ""
    first_seen = ", _first_seen" if extra else ""
    # The set rules read a narrow projection of the passing rows (columnar: only those
    # columns are scanned) and record the reasons of the few rows they flag.
    ok = f"(SELECT {narrow} FROM {mapped} WHERE _r1 IS NULL)"
    for cte in ctes:
        name, body = cte.split(" AS ", 1)
        con.execute(
            f"CREATE TEMP TABLE {table}_{name} AS {body.replace(' FROM ok ', f' FROM {ok} ok ')}"
        )
    stage2 = stage2.replace(" FROM ok ", f" FROM {ok} ok ")
    for name in ("known", "pstats", "bots"):
        stage2 = stage2.replace(f"JOIN {name} ON", f"JOIN {table}_{name} {name} ON")
    near = _near_duplicates_sql(plan, cfg, present, ok, f"{table}_f")
    if near is not None:
        # The set rules' few flagged rows first; the near-duplicate window then skips them.
        con.execute(
            f"CREATE TEMP TABLE {table}_f AS SELECT _ord, _r2 AS _r, {column} AS _c "
            f"FROM ({stage2}) WHERE _r2 IS NOT NULL"
        )
        con.execute(f"CREATE TEMP TABLE {table}_r AS SELECT * FROM {table}_f UNION ALL {near}")
        con.execute(f"DROP TABLE {table}_f")
    else:
        con.execute(
            f"CREATE TEMP TABLE {table}_r AS "
            f"SELECT _ord, coalesce(_r2, _r3) AS _r, {column} AS _c{first_seen} FROM "
            f"(SELECT _ord, _r2, {dedup} AS _r3{extra_sql} FROM ({stage2})) "
            f"WHERE coalesce(_r2, _r3) IS NOT NULL{keep_all}"
        )
    pii = tuple(n for s in sqls.values() for n in s.pii_flags)
    tables: tuple[str, ...] = (mapped, f"{table}_r")
    users = ""
    if "user_id" in sqls and sqls["user_id"].expr == _PSEUDO_KEY:
        # The rules compared integer keys, not 32-character pseudonyms (at 5M rows the
        # mapped table is stored in 1.23 s instead of 1.68 s); the view puts them back.
        con.execute(
            f"CREATE TEMP TABLE {table}_users AS SELECT DISTINCT _u, _p FROM {mapped}_pmap "
            "WHERE _u IS NOT NULL"
        )
        users = f" LEFT JOIN {table}_users _um ON _um._u = m.user_id"
        tables += (f"{table}_users",)
    cols = []
    for c in columns(plan.kind):
        name = quote_ident(c.name)
        if c.name == "created_at" and extra:
            value = "coalesce(r._first_seen, m.created_at)"
        elif c.name == "user_id" and users:
            value = "_um._p"
        elif c.name in present:
            value = f"m.{name}"
        else:
            value = "NULL"
        cols.append(f"CAST({value} AS {duckdb_type(c)}) AS {name}")
    keep = ", ".join(["m._ord", *(f"m.{quote_ident(p)}" for p in pii)])
    # A view, not a copy: the writer streams it once into Parquet, and the counts
    # read only the few columns they need.
    outcome = (
        "coalesce(m._r1, r._r) AS _reason, CASE WHEN m._r1 IS NOT NULL THEN m._c1 ELSE r._c END "
        f"AS _column FROM {mapped} m LEFT JOIN {table}_r r ON r._ord = m._ord"
    )
    con.execute(f"CREATE TEMP VIEW {table} AS SELECT {', '.join(cols)}, {keep}, {outcome}{users}")
    con.execute(f"CREATE TEMP VIEW {table}_reasons AS SELECT {keep}, {outcome}")
    con.execute("SET preserve_insertion_order = true")  # later staging relies on rowid order
    for t in (f"{mapped}_pmap", f"{table}_known", f"{table}_pstats", f"{table}_bots"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return CleanedLoad(table, pii, tables, f"{table}_reasons")
