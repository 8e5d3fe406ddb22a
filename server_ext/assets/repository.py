"""The registry's SQL statements on the ``assets`` table (each takes a connection)."""

from __future__ import annotations

import secrets
import time
from pathlib import PurePosixPath
from typing import Any

import orjson

from ..errors import bad_request, not_found
from . import schema
from .fields import MAX_METADATA_BYTES


def row_by_id(conn: Any, asset_id: str) -> Any:
    return conn.execute("SELECT * FROM assets WHERE id = ?", (asset_id,)).fetchone()


def row_values(category: str, rel: PurePosixPath, kind: str, size: int, mtime_ns: int,
               sha256: str | None, fmt: str | None, media_type: str | None, source: str,
               job_id: str | None, tags: list[str], metadata: dict[str, Any],
               manifest: bytes | None) -> dict[str, Any]:
    """A new row's values (fresh id, ``present``, created now)."""
    now = time.time()
    parent = rel.parent.as_posix()
    return {"id": secrets.token_hex(8), "category": category, "rel_path": rel.as_posix(),
            "dir": "" if parent == "." else parent, "name": rel.name, "kind": kind,
            "size": size, "mtime_ns": mtime_ns, "sha256": sha256, "format": fmt,
            "media_type": media_type, "state": "present", "source": source, "job_id": job_id,
            "tags": orjson.dumps(tags).decode(), "metadata": orjson.dumps(metadata).decode(),
            "manifest": manifest, "created": now, "updated": now}


def upsert(conn: Any, values: dict[str, Any], *, folder: bool = False) -> Any:
    """Insert, or update the live row at the same path (keeping its id and created)."""
    existing = schema.get_by_path(conn, values["category"], values["rel_path"])
    if folder:
        prefix = values["rel_path"] + "/"
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        for row in conn.execute(
            "SELECT id FROM assets WHERE category = ? AND rel_path LIKE ? ESCAPE '\\' "
            "AND state != 'trashed'", (values["category"], escaped + "%")
        ).fetchall():
            schema.delete_asset(conn, row["id"])
    if existing is None:
        schema.insert_asset(conn, values)
        return schema.get_row(conn, values["id"])
    old_meta = orjson.loads(existing["metadata"])
    merged = {**old_meta, **orjson.loads(values["metadata"])}
    old_tags = orjson.loads(existing["tags"])
    tags = old_tags + [t for t in orjson.loads(values["tags"]) if t not in old_tags]
    conn.execute(
        "UPDATE assets SET kind = ?, size = ?, mtime_ns = ?, sha256 = ?, format = ?, "
        "media_type = ?, state = 'present', source = CASE WHEN source = 'scan' THEN ? ELSE "
        "source END, job_id = COALESCE(?, job_id), tags = ?, metadata = ?, manifest = ?, "
        "updated = ? WHERE id = ?",
        (values["kind"], values["size"], values["mtime_ns"], values["sha256"],
         values["format"], values["media_type"], values["source"], values["job_id"],
         orjson.dumps(tags).decode(), orjson.dumps(merged).decode(), values["manifest"],
         values["updated"], existing["id"]),
    )
    schema.set_tags(conn, existing["id"], tags)
    return schema.get_row(conn, existing["id"])


def update_fields(conn: Any, asset_id: str, tags: list[str] | None,
                  metadata: dict[str, Any] | None) -> Any:
    """Replace tags; merge metadata (RFC 7396: a null value removes a key)."""
    row = row_by_id(conn, asset_id)
    if row is None:
        raise not_found("no such asset")
    if metadata is not None:
        merged = merge_patch(orjson.loads(row["metadata"]), metadata)
        encoded = orjson.dumps(merged)
        if len(encoded) > MAX_METADATA_BYTES:
            raise bad_request("metadata is too large")
        conn.execute("UPDATE assets SET metadata = ? WHERE id = ?",
                     (encoded.decode(), asset_id))
    if tags is not None:
        conn.execute("UPDATE assets SET tags = ? WHERE id = ?",
                     (orjson.dumps(tags).decode(), asset_id))
        schema.set_tags(conn, asset_id, tags)
    conn.execute("UPDATE assets SET updated = ? WHERE id = ?", (time.time(), asset_id))
    return row_by_id(conn, asset_id)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def set_missing(conn: Any, asset_id: str) -> None:
    conn.execute("UPDATE assets SET state = 'missing' WHERE id = ?", (asset_id,))


def set_trashed(conn: Any, asset_id: str, now: float, trash_path: str) -> Any:
    conn.execute("UPDATE assets SET state = 'trashed', trashed_at = ?, trash_path = ?, "
                 "updated = ? WHERE id = ?", (now, trash_path, now, asset_id))
    return schema.get_row(conn, asset_id)


def set_restored(conn: Any, asset_id: str, replaced: str | None) -> Any:
    """Back to ``present`` (removing the row of ``replaced``, a stale one at its path)."""
    if replaced is not None:
        schema.delete_asset(conn, replaced)
    conn.execute("UPDATE assets SET state = 'present', trashed_at = NULL, "
                 "trash_path = NULL, updated = ? WHERE id = ?", (time.time(), asset_id))
    return schema.get_row(conn, asset_id)


def trashed(conn: Any, category: str | None) -> list[Any]:
    """The trashed rows (of one category, or all), newest first."""
    return conn.execute(
        schema.SELECT + " WHERE state = 'trashed' AND (? IS NULL OR category = ?) "
        "ORDER BY trashed_at DESC, id", (category, category)).fetchall()


def trashed_before(conn: Any, cutoff: float, category: str | None) -> list[Any]:
    return conn.execute(
        "SELECT id, category FROM assets WHERE state = 'trashed' AND trashed_at <= ? "
        "AND (? IS NULL OR category = ?)", (cutoff, category, category)).fetchall()


def usage(conn: Any) -> dict[str, dict[str, int]]:
    """Category -> state -> count, with the present bytes and pending hashes."""
    result: dict[str, dict[str, int]] = {}
    for row in conn.execute(
        "SELECT category, state, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes, "
        "SUM(CASE WHEN sha256 IS NULL AND state = 'present' THEN 1 ELSE 0 END) AS pending "
        "FROM assets GROUP BY category, state"
    ):
        entry = result.setdefault(row["category"], {})
        entry[row["state"]] = row["n"]
        if row["state"] == "present":
            entry["bytes"] = row["bytes"]
            entry["pending"] = row["pending"]
    return result


def by_reference(conn: Any, categories: list[str], ref: str) -> list[tuple[int, Any]]:
    """Present rows matching ``ref`` as (rank, row): 0 path, 1 name, 2 stem."""
    marks = ",".join("?" * len(categories))
    rows = conn.execute(
        f"SELECT * FROM assets WHERE category IN ({marks}) AND state = 'present' AND "
        "(rel_path = ? OR name = ? OR substr(name, 1, ?) = ?)",
        (*categories, ref, ref, len(ref) + 1, ref + "."),
    ).fetchall()
    ranked = []
    for row in rows:
        rank = 0 if row["rel_path"] == ref else 1 if row["name"] == ref else 2
        ranked.append((rank, row))
    return ranked
