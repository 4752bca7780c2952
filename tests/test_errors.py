"""The error hierarchy: classes, HTTP statuses, exit codes and messages."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from shopkeeper import errors
from shopkeeper.errors import (
    ConfigError,
    DataContractError,
    DataContractErrors,
    DataWarning,
    FailureRow,
    IngestError,
    ModelNotTrainedError,
    NotFoundError,
    PluginNotFoundError,
    ReadOnlyQueryError,
    ShopkeeperError,
    WarehouseError,
)


def _error_classes() -> list[type[ShopkeeperError]]:
    return [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, ShopkeeperError)
    ]


def test_every_error_descends_from_the_root_and_is_documented() -> None:
    doc = errors.__doc__ or ""
    for cls in _error_classes():
        assert issubclass(cls, ShopkeeperError)
        assert cls.__name__ in doc, f"{cls.__name__} missing from the hierarchy docstring"
        assert cls.__doc__


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigError, ShopkeeperError),
        (IngestError, ShopkeeperError),
        (DataContractError, ShopkeeperError),
        (DataContractErrors, ShopkeeperError),
        (WarehouseError, ShopkeeperError),
        (ReadOnlyQueryError, WarehouseError),
        (NotFoundError, ShopkeeperError),
        (NotFoundError, KeyError),
        (ModelNotTrainedError, ShopkeeperError),
        (PluginNotFoundError, NotFoundError),
        (DataWarning, UserWarning),
    ],
)
def test_hierarchy(cls, parent) -> None:
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    ("cls", "status", "exit_code"),
    [
        (ShopkeeperError, 500, 3),
        (ConfigError, 422, 2),
        (IngestError, 422, 2),
        (DataContractError, 422, 3),
        (DataContractErrors, 422, 3),
        (WarehouseError, 500, 3),
        (ReadOnlyQueryError, 403, 2),
        (NotFoundError, 404, 2),
        (PluginNotFoundError, 404, 2),
        (ModelNotTrainedError, 409, 3),
    ],
)
def test_http_status_and_exit_code(cls, status, exit_code) -> None:
    assert cls.http_status == status
    assert cls.exit_code == exit_code


def test_config_error_message_names_the_path() -> None:
    err = ConfigError("bad value", path="mapping.yml")
    assert str(err) == "mapping.yml: bad value"
    assert err.path == "mapping.yml"
    assert str(ConfigError("bad value")) == "bad value"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "boom"),
        ({"path": "a.csv"}, "a.csv: boom"),
        ({"path": "a.csv", "line": 7}, "a.csv:7: boom"),
        ({"path": "a.csv", "line": 7, "column": "ts"}, "a.csv:7 (column ts): boom"),
        ({"line": 0}, "0: boom"),
    ],
)
def test_ingest_error_message(kwargs, expected) -> None:
    err = IngestError("boom", **kwargs)
    assert str(err) == expected
    assert (err.path, err.line, err.column) == (
        kwargs.get("path"),
        kwargs.get("line"),
        kwargs.get("column"),
    )


def test_not_found_is_a_key_error_with_a_readable_message() -> None:
    err = NotFoundError("no asset 'x'")
    assert str(err) == "no asset 'x'"  # KeyError would have added quotes
    assert str(NotFoundError()) == "not found"
    with pytest.raises(KeyError):
        raise err


def test_plugin_not_found_lists_the_known_names() -> None:
    err = PluginNotFoundError("adapter", "nope", ["movielens", "generic"])
    assert str(err) == "unknown adapter 'nope'; known: generic, movielens"
    hinted = PluginNotFoundError("model", "ann", ["x"], extra="ann")
    assert re.search(r"pip install 'shopkeeper\[ann\]'$", str(hinted))


def test_data_contract_errors() -> None:
    rows = [FailureRow("a.csv", 3, {"ts": "x"}), FailureRow(None, None)]
    one = DataContractError("ts", "unparseable", rows)
    assert (one.column, one.reason, one.rows) == ("ts", "unparseable", tuple(rows))
    assert str(one) == "column 'ts': unparseable (2 rows shown)"
    assert str(DataContractError("ts", "x", message="custom")) == "custom"
    many = DataContractErrors([one, DataContractError("price", "nonpositive")])
    assert len(many.errors) == 2
    assert str(many) == (
        "column 'ts': unparseable (2 rows shown); column 'price': nonpositive (0 rows shown)"
    )


def test_failure_row_is_frozen() -> None:
    row = FailureRow("a.csv", 3)
    assert row.values == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.source_line = 4  # type: ignore[misc]
