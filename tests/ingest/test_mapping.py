"""Mapping files: renames, casts, time zones, epochs, value maps, constants, currencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from shopkeeper.errors import ConfigError
from shopkeeper.ingest import ColumnSpec, MappingConfig, quote_ident, resolve_columns, sql_literal
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

NOW = datetime(2025, 1, 1, tzinfo=UTC)
_EVENT_COLS = ["cust", "sku", "action", "when", "amt", "cur"]


def _resolve(columns: dict[str, Any], source: list[str], kind: Any = "events", **extra: Any):
    return resolve_columns(
        MappingConfig.model_validate({"columns": columns, **extra}), kind, source, "map.yml"
    )


def _ingest(
    tmp_path: Path, data: str | Path, mapping: str | None, kind: Any = "events"
) -> tuple[Workspace, dict[str, Any]]:
    if isinstance(data, Path):
        src = data
    else:
        src = tmp_path / "source.csv"
        src.write_text(data, encoding="utf-8")
    mapping_path = None
    if mapping is not None:
        mapping_path = tmp_path / "mapping.yml"
        mapping_path.write_text(mapping, encoding="utf-8")
    ws = Workspace.at(tmp_path / "ws")
    [result] = ingest(ws, IngestRequest(src, "generic", kind, mapping_path), now=NOW)
    assert result["input_rows"] == (
        result["clean_rows"] + result["quarantined_rows"] + result["duplicate_rows"]
    )
    return ws, result


def _query(ws: Workspace, sql: str) -> list[dict[str, Any]]:
    with Warehouse(ws, read_only=True) as wh:
        names, rows = wh.query(sql)
    return [dict(zip(names, r, strict=True)) for r in rows]


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# -- SQL helpers ------------------------------------------------------------------------------


def test_quote_ident_and_sql_literal() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal(None) == "NULL"
    assert sql_literal(True) == "TRUE"
    assert sql_literal(2) == "2"
    assert sql_literal(2.5) == "2.5"


# -- resolve_columns -----------------------------------------------------------------------


def test_canonical_names_match_case_insensitively() -> None:
    out = _resolve({}, ["USER_ID", "Item_Id", "event_type", "TS", "other"])
    assert {k: v.raw_sql for k, v in out.items()} == {
        "user_id": '"USER_ID"',
        "item_id": '"Item_Id"',
        "event_type": '"event_type"',
        "ts": '"TS"',
    }
    assert out["user_id"].source_columns == ("USER_ID",)


def test_aliases() -> None:
    items = _resolve({}, ["item_id", "title", "Category"], "items")
    assert items["category_path"].raw_sql == '"Category"'
    reviews = _resolve({}, ["user_id", "item_id", "rating", "review"], "reviews")
    assert reviews["text"].raw_sql == '"review"'


def test_rename_shorthand_and_spec() -> None:
    out = _resolve(
        {
            "user_id": "cust",
            "item_id": {"column": "SKU"},
            "event_type": {"column": "action", "values": {" PV ": "view"}},
            "ts": {"column": "when", "format": "%d/%m/%Y", "timezone": "Europe/Paris"},
        },
        _EVENT_COLS,
    )
    assert out["user_id"].raw_sql == '"cust"'
    assert out["item_id"].raw_sql == '"sku"'  # the file's spelling wins
    assert out["event_type"].spec.values == {"pv": "view"}
    assert out["ts"].spec.timezone == "Europe/Paris"
    assert "price" not in out  # optional and unmatched


def test_constant_and_sql_sources() -> None:
    out = _resolve(
        {
            "user_id": "cust",
            "item_id": "sku",
            "ts": "when",
            "event_type": {"constant": "view"},
            "value": {"sql": '"amt" * 2 + "cur_rate"'},
        },
        [*_EVENT_COLS, "cur_rate"],
    )
    assert out["event_type"].raw_sql == "'view'"
    assert out["event_type"].source_columns == ()
    assert out["value"].raw_sql == '("amt" * 2 + "cur_rate")'
    assert set(out["value"].source_columns) == {"amt", "cur_rate"}


def test_sql_sources_find_bare_and_quoted_names() -> None:
    out = _resolve(
        {
            "user_id": {"sql": "lower(CUST)"},
            "item_id": "sku",
            "ts": "when",
            "event_type": {"sql": "coalesce(\"action\", 'view')"},
        },
        _EVENT_COLS,
    )
    assert out["user_id"].source_columns == ("cust",)
    assert out["event_type"].source_columns == ("action",)


def test_user_ids_from_a_sql_expression_never_reach_the_quarantine(tmp_path) -> None:
    data = "Cust,sku,action,when\nSecret-1,A,view,not a date\nSecret-2,A,view,2024-01-01\n"
    mapping = (
        'columns: {user_id: {sql: "lower(cust)"}, item_id: sku, event_type: action, ts: when}\n'
    )
    ws, result = _ingest(tmp_path, data, mapping)
    assert result["reasons"] == {"unparseable_ts": 1}
    [bad] = _query(ws, "SELECT raw FROM quarantine")
    assert "Secret-1" not in bad["raw"]
    [row] = _query(ws, "SELECT user_id FROM events")
    assert row["user_id"] == ws.keys.load().pseudonymize("secret-2")


def test_mapping_currency_is_a_constant_unless_the_file_has_one() -> None:
    base = {"user_id": "cust", "item_id": "sku", "ts": "when", "event_type": "action"}
    out = _resolve(base, ["cust", "sku", "when", "action"], currency="eur")
    assert out["currency"].raw_sql == "'EUR'"
    out = _resolve(base, ["cust", "sku", "when", "action", "Currency"], currency="eur")
    assert out["currency"].raw_sql == '"Currency"'


def test_unknown_canonical_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown events columns \['colour'\]") as info:
        _resolve({"colour": "c"}, _EVENT_COLS)
    assert "known:" in str(info.value)
    assert "'user_id'" in str(info.value)
    assert info.value.path == "map.yml"


def test_missing_source_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        _resolve({"user_id": "customer"}, _EVENT_COLS)
    msg = str(info.value)
    assert "'user_id'" in msg
    assert "'customer'" in msg
    assert str(_EVENT_COLS) in msg


def test_missing_required_column_names_it_and_lists_the_files_columns() -> None:
    with pytest.raises(ConfigError) as info:
        _resolve({"user_id": "cust", "item_id": "sku", "event_type": "action"}, _EVENT_COLS)
    msg = str(info.value)
    assert "required events column 'ts'" in msg
    assert str(_EVENT_COLS) in msg
    assert msg.startswith("map.yml: ")


def test_spec_without_a_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs one of column, sql or constant"):
        _resolve({"user_id": {"format": "%Y"}}, _EVENT_COLS)


@pytest.mark.parametrize(
    "data",
    [
        {"columns": {"ts": {"column": "x", "fmt": "%Y"}}},
        {"columns": {"ts": {"column": "x", "unit": "ns"}}},
        {"asset": "Bad-Name"},
        {"currency": "EURO"},
        {"fx_rates": {"USD": 0}},
        {"read": {"delimiter": ";", "sep": ";"}},
        {"surprise": 1},
    ],
)
def test_invalid_mappings_are_rejected(data) -> None:
    with pytest.raises(ValidationError):
        MappingConfig.model_validate(data)


def test_value_map_keys_are_lower_cased() -> None:
    assert ColumnSpec(values={" Buy ": "purchase", "PV": "view"}).values == {
        "buy": "purchase",
        "pv": "view",
    }


# -- end to end: parsed values ---------------------------------------------------------------

_MAPPING = """
kind: events
columns:
  user_id: cust
  item_id: {column: sku}
  event_type: {column: action, values: {PV: view, Buy: purchase}}
  ts: {column: when, format: "%d/%m/%Y %H:%M", timezone: Europe/Paris}
  price: {column: amt, cast: double}
  quantity: {column: qty}
currency: eur
"""


def test_rename_cast_value_map_and_timezone_across_dst(tmp_path) -> None:
    data = (
        "cust,sku,action,when,amt,qty\n"
        "17850.0,A1,PV,30/03/2024 12:00,10,1\n"  # CET, UTC+1
        "17850,A1,buy,01/04/2024 12:00,2.5,2\n"  # CEST, UTC+2
        "42,B2,Add to cart,26/10/2024 12:00,3,1\n"  # CEST
        "42,B2,VIEW,27/10/2024 12:00,3,1\n"
    )  # CET again
    ws, result = _ingest(tmp_path, data, _MAPPING)
    assert result["clean_rows"] == 4, result["reasons"]
    rows = _query(ws, "SELECT * FROM events ORDER BY ts")
    assert [(r["event_type"], r["ts"]) for r in rows] == [
        ("view", _utc(2024, 3, 30, 11)),
        ("purchase", _utc(2024, 4, 1, 10)),
        ("add_to_cart", _utc(2024, 10, 26, 10)),
        ("view", _utc(2024, 10, 27, 11)),
    ]
    assert [r["price"] for r in rows] == [10.0, 2.5, 3.0, 3.0]
    assert [r["quantity"] for r in rows] == [1, 2, 1, 1]
    assert {r["currency"] for r in rows} == {"EUR"}
    assert rows[0]["user_id"] == rows[1]["user_id"] == ws.keys.load().pseudonymize("17850")
    assert rows[0]["user_id"] != rows[2]["user_id"]


@pytest.mark.parametrize(("unit", "factor"), [("s", 1), ("ms", 1_000), ("us", 1_000_000)])
def test_epoch_units(tmp_path, unit, factor) -> None:
    epoch = 1_711_800_000  # 2024-03-30 12:00:00 UTC
    data = f"u,i,t\nu1,i1,{epoch * factor}\nu1,i2,{epoch * factor + factor // 2}\n"
    mapping = f"""
columns:
  user_id: u
  item_id: i
  ts: {{column: t, unit: {unit}, timezone: Asia/Tokyo}}
  event_type: {{constant: view}}
"""
    ws, result = _ingest(tmp_path, data, mapping)
    assert result["clean_rows"] == 2, result["reasons"]
    got = [r["ts"] for r in _query(ws, "SELECT ts FROM events ORDER BY ts")]
    expected = _utc(2024, 3, 30, 12)
    assert got == [expected, expected + timedelta(seconds=0.5 if factor > 1 else 0)]


def test_epoch_milliseconds_read_as_seconds_are_unparseable(tmp_path) -> None:
    data = "u,i,t,q\nu1,i1,1711800000000,x\n"
    mapping = (
        "columns: {user_id: u, item_id: i, ts: {column: t, unit: s}, "
        "event_type: {constant: view}, quantity: {constant: 3}}\n"
    )
    _, result = _ingest(tmp_path, data, mapping)
    assert result["reasons"] == {"unparseable_ts": 1}


def test_constants(tmp_path) -> None:
    data = "u,i,t\nu1,i1,2024-01-01\n"
    mapping = (
        "columns: {user_id: u, item_id: i, ts: t, event_type: {constant: Add to cart}, "
        "quantity: {constant: 3}, price: {constant: 2.5}, currency: {constant: usd}}\n"
    )
    ws, result = _ingest(tmp_path, data, mapping)
    assert result["clean_rows"] == 1, result["reasons"]
    [row] = _query(ws, "SELECT event_type, quantity, price, currency FROM events")
    assert row == {"event_type": "add_to_cart", "quantity": 3, "price": 2.5, "currency": "USD"}


def test_epoch_in_the_wrong_unit_is_too_early(tmp_path) -> None:
    data = "u,i,t\nu1,i1,1711800000\n"  # seconds read as milliseconds: January 1970
    mapping = (
        "columns: {user_id: u, item_id: i, ts: {column: t, unit: ms}, "
        "event_type: {constant: view}}\n"
    )
    _, result = _ingest(tmp_path, data, mapping)
    assert result["reasons"] == {"timestamp_before_start": 1}


def test_timestamps_with_offsets_ignore_the_mapping_zone(tmp_path) -> None:
    data = (
        "u,i,t\n"
        "u1,i1,2024-03-30T12:00:00+05:30\n"
        "u1,i2,2024-03-30T12:00:00+0530\n"
        "u1,i3,2024-03-30 12:00:00+05\n"  # PostgreSQL's text form
        "u1,i4,2024-03-30T12:00:00Z\n"
        "u1,i5,2024-03-30 12:00:00\n"  # naive: Paris time
        "u1,i6,2024-03-30\n"
    )  # a date: midnight in Paris
    mapping = (
        "columns: {user_id: u, item_id: i, ts: {column: t, timezone: Europe/Paris}, "
        "event_type: {constant: view}}\n"
    )
    ws, result = _ingest(tmp_path, data, mapping)
    assert result["clean_rows"] == 6, result["reasons"]
    got = {r["item_id"]: r["ts"] for r in _query(ws, "SELECT item_id, ts FROM events")}
    assert got == {
        "i1": _utc(2024, 3, 30, 6, 30),
        "i2": _utc(2024, 3, 30, 6, 30),
        "i3": _utc(2024, 3, 30, 7),
        "i4": _utc(2024, 3, 30, 12),
        "i5": _utc(2024, 3, 30, 11),
        "i6": _utc(2024, 3, 29, 23),
    }


def test_parquet_timestamps_with_a_zone_are_not_shifted(tmp_path) -> None:
    when = datetime(2024, 7, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    table = pa.table(
        {
            "u": ["u1", "u2"],
            "i": ["i1", "i2"],
            "aware": pa.array([when, when], pa.timestamp("us", "UTC")),
            "naive": pa.array([datetime(2024, 7, 1, 12)] * 2, pa.timestamp("us")),
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    mapping = (
        "columns: {user_id: u, item_id: i, ts: {column: aware, timezone: America/New_York},"
        " event_type: {constant: view}}\n"
    )
    ws, result = _ingest(tmp_path, path, mapping)
    assert result["clean_rows"] == 2, result["reasons"]
    assert {r["ts"] for r in _query(ws, "SELECT ts FROM events")} == {_utc(2024, 7, 1, 10)}


def test_parquet_naive_timestamps_take_the_mapping_zone(tmp_path) -> None:
    table = pa.table(
        {
            "u": ["u1"],
            "i": ["i1"],
            "naive": pa.array([datetime(2024, 7, 1, 12)], pa.timestamp("us")),
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    mapping = (
        "columns: {user_id: u, item_id: i, ts: {column: naive, timezone: America/New_York},"
        " event_type: {constant: view}}\n"
    )
    ws, _ = _ingest(tmp_path, path, mapping)
    assert [r["ts"] for r in _query(ws, "SELECT ts FROM events")] == [_utc(2024, 7, 1, 16)]


_FX = """
columns: {user_id: u, item_id: i, ts: t, event_type: e, price: p, currency: c}
base_currency: EUR
fx_rates: {USD: 0.5, gbp: 1.25}
"""


def test_currency_conversion(tmp_path) -> None:
    data = (
        "u,i,t,e,p,c\n"
        "u1,i1,2024-01-01 10:00,purchase,10,USD\n"
        "u1,i2,2024-01-01 10:01,purchase,7,eur\n"
        "u1,i3,2024-01-01 10:02,purchase,8,gbp\n"
        "u1,i4,2024-01-01 10:03,purchase,£4,GBP\n"
    )
    ws, result = _ingest(tmp_path, data, _FX)
    assert result["clean_rows"] == 4, result["reasons"]
    rows = _query(ws, "SELECT item_id, price, currency FROM events ORDER BY item_id")
    assert [(r["item_id"], r["price"], r["currency"]) for r in rows] == [
        ("i1", 5.0, "EUR"),
        ("i2", 7.0, "EUR"),
        ("i3", 10.0, "EUR"),
        ("i4", 5.0, "EUR"),
    ]


def test_currency_without_a_rate_is_quarantined(tmp_path) -> None:
    data = (
        "u,i,t,e,p,c\n"
        "u1,i1,2024-01-01 10:00,purchase,10,USD\n"
        "u1,i2,2024-01-01 10:01,purchase,100,JPY\n"
        "u1,i3,2024-01-01 10:02,purchase,1,euro\n"
    )
    ws, result = _ingest(tmp_path, data, _FX)
    assert result["clean_rows"] == 1
    assert result["quarantined_rows"] == 2
    bad = _query(ws, "SELECT source_line FROM quarantine ORDER BY source_line")
    assert [r["source_line"] for r in bad] == [3, 4]


def test_currency_problems_get_their_own_codes(tmp_path) -> None:
    data = (
        "u,i,t,e,p,c\n"
        "u1,i2,2024-01-01 10:01,purchase,100,JPY\n"
        "u1,i3,2024-01-01 10:02,purchase,1,euro\n"
    )
    _, result = _ingest(tmp_path, data, _FX)
    assert result["reasons"] == {"unknown_currency": 1, "invalid_currency": 1}


# -- end to end: mapping errors write nothing ------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ("columns: {colour: c}\n", "unknown events columns"),
        ("columns: {user_id: customer}\n", "which the file lacks"),
        (
            "columns: {user_id: cust, item_id: sku, event_type: action}\n",
            r"no source column for required events column 'ts'; the file has \['cust'",
        ),
    ],
)
def test_mapping_errors_write_nothing(tmp_path, mapping, match) -> None:
    data = "cust,sku,action,when\nu1,i1,view,2024-01-01\n"
    with pytest.raises(ConfigError, match=match):
        _ingest(tmp_path, data, mapping)
    with Warehouse(Workspace.at(tmp_path / "ws"), read_only=True) as wh:
        assert wh.latest_versions() == []
