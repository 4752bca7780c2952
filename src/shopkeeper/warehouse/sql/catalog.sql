-- Catalog schema v1. Every asset version is immutable; the latest is the highest version.
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.schema_info (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta.versions (
    asset VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    load_id VARCHAR NOT NULL,
    transform VARCHAR NOT NULL,
    params JSON,
    row_count BIGINT NOT NULL,
    schema JSON NOT NULL,
    pii JSON NOT NULL,
    input_rows BIGINT NOT NULL,
    clean_rows BIGINT NOT NULL,
    quarantined_rows BIGINT NOT NULL,
    duplicate_rows BIGINT NOT NULL,
    reasons JSON NOT NULL,
    quality JSON NOT NULL,
    PRIMARY KEY (asset, version)
);
CREATE TABLE IF NOT EXISTS meta.files (
    asset VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    role VARCHAR NOT NULL,          -- 'data' or 'quarantine'
    path VARCHAR NOT NULL,          -- relative to the workspace
    rows BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta.sources (
    asset VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    bytes BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta.parents (
    asset VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    parent_asset VARCHAR NOT NULL,
    parent_version INTEGER NOT NULL,
    relation VARCHAR NOT NULL       -- 'previous' (same asset) or 'checked_against'
);
CREATE TABLE IF NOT EXISTS meta.loads (
    load_id VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    adapter VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    result JSON NOT NULL
);
