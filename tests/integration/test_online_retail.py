"""The real Online Retail file: known counts, and the bundled sample end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopkeeper.warehouse import (
    IngestRequest,
    Warehouse,
    Workspace,
    ingest,
    read_user_attributes,
)
from tests.conftest import SAMPLES


@pytest.mark.realdata
@pytest.mark.integration
@pytest.mark.slow
def test_real_online_retail_known_counts(shared_data: Path, workspace: Workspace) -> None:
    path = shared_data / "online-retail-uci" / "online_retail.parquet"
    results = {r["asset"]: r for r in ingest(workspace, IngestRequest(path, "online-retail"))}
    for r in results.values():
        assert r["input_rows"] == 541_909
        assert r["input_rows"] == r["clean_rows"] + r["quarantined_rows"] + r["duplicate_rows"]
        assert r["reasons"]["exact_duplicate"] == 5_268
    events, users, items = results["events"], results["users"], results["items"]
    with Warehouse(workspace, read_only=True) as wh:
        quality = wh.version("events").quality
        assert quality["source_nulls"]["CustomerID"] == 135_080
        assert quality["source_nulls"]["Description"] == 1_454
        # Lines without a customer: all of them are quarantined or duplicates, none clean.
        assert events["reasons"]["missing_user_id"] + 43 == 135_080  # 43 are exact duplicates
        assert users["clean_rows"] == 4_372  # distinct customers in the file
        _, n_users = wh.query("SELECT count(*) FROM users")
        assert n_users == [(4_372,)]
        _, returns = wh.query("SELECT count(*) FROM events WHERE event_type = 'return'")
        assert 8_000 < returns[0][0] < 9_288  # C-invoices less non-product lines
        _, np_ = wh.query(
            "SELECT count(*) FROM events WHERE item_id IN ('POST', 'DOT', 'M', "
            "'BANK CHARGES', 'AMAZONFEE') OR item_id LIKE 'GIFT_%'"
        )
        assert np_ == [(0,)]
        assert items["reasons"]["missing_title"] == 1_454
        _, multi = wh.query("SELECT count(*) FROM items")
        assert 3_500 < multi[0][0] < 4_070
        _, tz = wh.query("SELECT min(ts) FROM events")
        assert str(tz[0][0]).startswith("2010-12-01 08:26:00")  # GMT in December = UTC
        # British Summer Time: a July invoice at local hh:mm is stored one hour earlier in UTC.
        _, summer = wh.query(
            f"SELECT e.ts, r.InvoiceDate FROM events e JOIN read_parquet('{path}') r "
            "ON e.session_id = r.InvoiceNo "
            "WHERE r.InvoiceDate BETWEEN '2011-07-01' AND '2011-08-01' LIMIT 1"
        )
        utc, local = summer[0]
        assert (local - utc.replace(tzinfo=None)).total_seconds() == 3600


def test_bundled_sample_two_months(workspace: Workspace) -> None:
    dec = ingest(
        workspace, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", "online-retail")
    )
    jan = ingest(
        workspace, IngestRequest(SAMPLES / "online-retail-2011-01.csv.gz", "online-retail")
    )
    assert [r["version"] for r in jan] == [2, 2, 2]
    by = {r["asset"]: r for r in dec}
    assert by["events"]["input_rows"] == 42_481
    with Warehouse(workspace, read_only=True) as wh:
        _, months = wh.query(
            "SELECT strftime(ts, '%Y-%m') AS m, count(*) FROM events GROUP BY 1 ORDER BY 1"
        )
        assert [m for m, _ in months] == ["2010-12", "2011-01"]
        _, bst = wh.query("SELECT min(ts) FROM events WHERE session_id = '536365'")
        assert str(bst[0][0]).startswith("2010-12-01 08:26")
        _, q = wh.query(
            "SELECT reason, source_line, raw FROM quarantine "
            "WHERE asset = 'events' AND version = 1 AND reason = 'non_product_code' "
            "ORDER BY source_line LIMIT 1"
        )
        _reason, line, raw = q[0]
        assert json.loads(raw)["StockCode"] == "POST"
        # line numbers point at the CSV: header is line 1
        assert line == 47
        _, users = wh.query("SELECT attributes FROM users WHERE attributes IS NOT NULL LIMIT 1")
        assert users[0][0].startswith("enc:v1:")  # sealed at rest; admins decrypt
    assert read_user_attributes(workspace, ["17850"])["17850"] == {"country": "United Kingdom"}
