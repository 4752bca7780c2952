"""`shopkeeper privacy forget` and `privacy rotate-field-key`: JSON shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import run

EVENTS = (
    "user_id,item_id,event_type,ts\n"
    "alice,i1,view,2024-01-01 10:00:00\n"
    "alice,i2,purchase,2024-01-01 10:05:00\n"
    "bob,i1,view,2024-01-02 09:00:00\n"
)
USERS = "user_id,created_at,zip_code\nalice,2024-01-01,SECRETZIP1\nbob,2024-01-02,SECRETZIP2\n"


def test_forget_and_rotate_field_key(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    for name, text, kind in (("events.csv", EVENTS, "events"), ("users.csv", USERS, "users")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert run(home, "ingest", str(tmp_path / name), "--kind", kind).returncode == 0
    out = run(home, "privacy", "rotate-field-key", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"asset": "users", "version": 2, "rows": 2}]

    out = run(home, "privacy", "forget", "alice", "--actor", "dpo", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    pseudonym = run(home, "privacy", "pseudonym", "alice").stdout.strip()
    assert result == {
        "user": pseudonym,
        "rows_removed": {"events": 2, "users": 2},  # one row each in users v1 and v2
        "files_rewritten": 3,
    }
    out = run(
        home, "sql", "SELECT user_id FROM events UNION ALL SELECT user_id FROM users", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert pseudonym not in out.stdout
    human = run(home, "privacy", "forget", "alice")
    assert human.returncode == 0
    assert "0 rows removed" in human.stdout
    audit = (home / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert "alice" not in audit
    assert [json.loads(line)["action"] for line in audit.splitlines()] == [
        "rotate_field_key",
        "forget_user",
        "forget_user",
    ]
    assert run(home, "privacy", "forget", " ").returncode == 2
