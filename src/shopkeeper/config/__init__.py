"""Process settings and config-file loading."""

from __future__ import annotations

from shopkeeper.config._load import load_yaml_config
from shopkeeper.config._settings import ShopkeeperSettings

__all__ = ["ShopkeeperSettings", "load_yaml_config"]
