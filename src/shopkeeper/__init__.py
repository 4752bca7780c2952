"""Shopkeeper: raw shop exports in, governed data assets out."""

from __future__ import annotations

from shopkeeper.errors import ShopkeeperError

__version__ = "0.1.0"
__all__ = ["ShopkeeperError", "__version__"]
