"""The Prometheus alert rules: they parse, name metrics the service exports, and fire."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.serve.conftest import CUSTOMER, auth

RULES = resources.files("shopkeeper.serve") / "prometheus"


def test_rules_name_only_exported_metrics(client: TestClient, keys: dict[str, str]) -> None:
    client.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"]))
    client.get("/search", params={"q": "bag"}, headers=auth(keys["reader"]))
    exported = set(re.findall(r"^(shopkeeper_\w+?)(?:\{| )", client.get("/metrics").text, re.M))
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    alerts = [r for g in rules for r in g["rules"]]
    assert len(alerts) >= 8
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        for name in re.findall(r"shopkeeper_\w+", rule["expr"]):
            assert name in exported, f"{rule['alert']} uses {name}, which is not exported"
        for route in re.findall(r'route="([^"]+)"', rule["expr"]):
            assert f'route="{route}"' in client.get("/metrics").text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    folder = str(RULES)
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        out = subprocess.run(
            ["promtool", *args], cwd=folder, capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr
