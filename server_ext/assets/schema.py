"""The registry's tables (forward-only migrations) and the row <-> dict mapping."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

MIGRATIONS: list[str] = [
    # 1: assets, their tags, the hard links the registry made, resumable uploads
    """
    CREATE TABLE assets (
        id TEXT PRIMARY KEY,
        category TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT,
        format TEXT,
        media_type TEXT,
        state TEXT NOT NULL,
        source TEXT NOT NULL,
        job_id TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        manifest BLOB,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        trashed_at REAL,
        trash_path TEXT
    );
    CREATE UNIQUE INDEX assets_by_path ON assets (category, rel_path) WHERE state != 'trashed';
    CREATE INDEX assets_by_name ON assets (category, rel_path, id);
    CREATE INDEX assets_by_dir ON assets (category, dir);
    CREATE INDEX assets_by_state ON assets (category, state);
    CREATE INDEX assets_by_size ON assets (category, size, id);
    CREATE INDEX assets_by_mtime ON assets (category, mtime_ns, id);
    CREATE INDEX assets_by_created ON assets (category, created, id);
    CREATE INDEX assets_by_sha ON assets (sha256) WHERE sha256 IS NOT NULL;
    CREATE INDEX assets_unhashed ON assets (kind) WHERE sha256 IS NULL AND state = 'present';
    CREATE INDEX assets_trashed ON assets (trashed_at) WHERE state = 'trashed';
    CREATE TABLE asset_tags (
        asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (asset_id, tag)
    );
    CREATE INDEX asset_tags_by_tag ON asset_tags (tag, asset_id);
    CREATE TABLE asset_links (
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        nlink INTEGER NOT NULL,
        PRIMARY KEY (dev, ino)
    );
    CREATE TABLE asset_uploads (
        id TEXT PRIMARY KEY,
        category TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT,
        received INTEGER NOT NULL DEFAULT 0,
        overwrite INTEGER NOT NULL DEFAULT 0,
        tags TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        part_path TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )
    """,
]

COLUMNS = ("id", "category", "rel_path", "dir", "name", "kind", "size", "mtime_ns", "sha256",
           "format", "media_type", "state", "source", "job_id", "tags", "metadata", "created",
           "updated", "trashed_at", "trash_path")
SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM assets"


def row_to_asset(row: sqlite3.Row) -> dict[str, Any]:
    """The public shape of an asset (``path`` is added by the service)."""
    return {
        "id": row["id"],
        "category": row["category"],
        "rel_path": row["rel_path"],
        "name": row["name"],
        "kind": row["kind"],
        "size": row["size"],
        "sha256": row["sha256"],
        "format": row["format"],
        "media_type": row["media_type"],
        "state": row["state"],
        "source": row["source"],
        "job_id": row["job_id"],
        "tags": orjson.loads(row["tags"]),
        "metadata": orjson.loads(row["metadata"]),
        "created": row["created"],
        "modified": row["mtime_ns"] / 1e9,
        "updated": row["updated"],
        "trashed_at": row["trashed_at"],
    }


def get_row(conn: sqlite3.Connection, asset_id: str) -> sqlite3.Row | None:
    return conn.execute(SELECT + " WHERE id = ?", (asset_id,)).fetchone()


def get_by_path(conn: sqlite3.Connection, category: str, rel_path: str) -> sqlite3.Row | None:
    return conn.execute(SELECT + " WHERE category = ? AND rel_path = ? AND state != 'trashed'",
                        (category, rel_path)).fetchone()


def insert_asset(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    """Insert one asset row and its tags (``values`` holds every column)."""
    conn.execute(
        "INSERT INTO assets (id, category, rel_path, dir, name, kind, size, mtime_ns, sha256,"
        " format, media_type, state, source, job_id, tags, metadata, manifest, created,"
        " updated) VALUES (:id, :category, :rel_path, :dir, :name, :kind, :size, :mtime_ns,"
        " :sha256, :format, :media_type, :state, :source, :job_id, :tags, :metadata,"
        " :manifest, :created, :updated)",
        values,
    )
    set_tags(conn, values["id"], orjson.loads(values["tags"]))


def set_tags(conn: sqlite3.Connection, asset_id: str, tags: list[str]) -> None:
    conn.execute("DELETE FROM asset_tags WHERE asset_id = ?", (asset_id,))
    conn.executemany("INSERT OR IGNORE INTO asset_tags (asset_id, tag) VALUES (?, ?)",
                     [(asset_id, tag) for tag in tags])


def delete_asset(conn: sqlite3.Connection, asset_id: str) -> None:
    conn.execute("DELETE FROM asset_tags WHERE asset_id = ?", (asset_id,))
    conn.execute("DELETE FROM assets WHERE id = ?", (asset_id,))


def duplicates_of(conn: sqlite3.Connection, assets: list[dict[str, Any]]) -> None:
    """Fill ``duplicates`` (ids of other assets with the same sha256) on each asset."""
    digests = sorted({a["sha256"] for a in assets if a.get("sha256")})
    found: dict[str, list[str]] = {}
    for start in range(0, len(digests), 500):
        chunk = digests[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT id, sha256 FROM assets WHERE sha256 IN ({marks}) AND state != 'trashed'",
            chunk,
        ):
            found.setdefault(row["sha256"], []).append(row["id"])
    for asset in assets:
        same = found.get(asset.get("sha256") or "", [])
        asset["duplicates"] = [other for other in same if other != asset["id"]]


def own_link(conn: sqlite3.Connection, dev: int, ino: int, nlink: int) -> bool:
    """Whether the registry made the extra hard links of this inode (and no one else did)."""
    row = conn.execute("SELECT nlink FROM asset_links WHERE dev = ? AND ino = ?",
                       (dev, ino)).fetchone()
    return row is not None and nlink <= row["nlink"]


def record_link(conn: sqlite3.Connection, dev: int, ino: int, nlink: int) -> None:
    conn.execute(
        "INSERT INTO asset_links (dev, ino, nlink) VALUES (?, ?, ?) "
        "ON CONFLICT(dev, ino) DO UPDATE SET nlink = MAX(nlink, excluded.nlink)",
        (dev, ino, nlink),
    )
