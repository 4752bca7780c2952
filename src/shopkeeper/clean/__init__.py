"""Cleaning and standardization rules, each with a reason code; privacy at the door."""

from __future__ import annotations

from shopkeeper.clean._classify import CleanedLoad, build_mapped_sql, classify
from shopkeeper.clean._config import DEFAULT_EVENT_TYPES, CleaningConfig
from shopkeeper.clean._crypto import FieldCipher, is_token
from shopkeeper.clean._pii import KeyStore, Pseudonymizer, hmac_sql, mask_pii, mask_pii_sql
from shopkeeper.clean._reasons import DUPLICATE_REASONS, Reason, is_duplicate_code, reason_code
from shopkeeper.clean._text import (
    NULL_MARKER_RE,
    is_null_or_marker,
    norm_id,
    norm_text,
    register_text_functions,
)

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "DUPLICATE_REASONS",
    "NULL_MARKER_RE",
    "CleanedLoad",
    "CleaningConfig",
    "FieldCipher",
    "KeyStore",
    "Pseudonymizer",
    "Reason",
    "build_mapped_sql",
    "classify",
    "hmac_sql",
    "is_duplicate_code",
    "is_null_or_marker",
    "is_token",
    "mask_pii",
    "mask_pii_sql",
    "norm_id",
    "norm_text",
    "reason_code",
    "register_text_functions",
]
