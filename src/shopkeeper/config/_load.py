"""Parse a YAML file and validate it into a pydantic model."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shopkeeper.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def load_yaml_config(path: str | Path, model: type[M]) -> M:
    """Load `path` with `yaml.safe_load` and validate it as `model`.

    Raises:
        ConfigError: the file is missing, not YAML, or does not validate.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(p)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{where}not valid YAML", path=str(p)) from exc
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", path=str(p))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(problems, path=str(p)) from exc
