"""``GET assets/list/{category}``: filters, sort orders and keyset pagination.

The cursor is the last item's sort key and id, so a page costs an index range scan
whatever its depth (no OFFSET), and rows added meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import bad_request
from .schema import SELECT, duplicates_of, row_to_asset

SORTS = {"name": "rel_path", "size": "size", "modified": "mtime_ns", "created": "created"}
STATES = ("present", "missing", "all")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ListQuery:
    category: str
    limit: int = 100
    cursor: str | None = None
    sort: str = "name"
    descending: bool = False
    name: str | None = None
    type: str | None = None
    tag: str | None = None
    state: str = "all"

    @classmethod
    def parse(cls, category: str, args: dict[str, str | None]) -> ListQuery:
        try:
            limit = int(args.get("limit") or 100)
        except ValueError:
            raise bad_request("limit must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_request(f"limit must be between 1 and {MAX_LIMIT}")
        sort = args.get("sort") or "name"
        descending = sort.startswith("-")
        if sort.lstrip("-") not in SORTS:
            raise bad_request(f"sort must be one of {sorted(SORTS)} (prefix - to reverse)")
        state = args.get("state") or "all"
        if state not in STATES:
            raise bad_request(f"state must be one of {list(STATES)}")
        return cls(category, limit, args.get("cursor") or None, sort.lstrip("-"), descending,
                   args.get("name") or None, args.get("type") or None, args.get("tag") or None,
                   state)


def _encode_cursor(value: Any, asset_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([value, asset_id])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, asset_id = orjson.loads(raw)
    except (ValueError, TypeError):
        raise bad_request("invalid cursor", "invalid_cursor") from None
    if not isinstance(asset_id, str) or not isinstance(value, (str, int, float)) or (
            isinstance(value, int) and not -(2**63) <= value < 2**63):  # SQLite's integers
        raise bad_request("invalid cursor", "invalid_cursor")
    return value, asset_id


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_page(conn: sqlite3.Connection, query: ListQuery) -> dict[str, Any]:
    """One page of a category (reader thread)."""
    column = SORTS[query.sort]
    where = ["category = ?"]
    params: list[Any] = [query.category]
    if query.state == "all":
        where.append("state IN ('present', 'missing')")
    else:
        where.append("state = ?")
        params.append(query.state)
    if query.name:
        where.append("rel_path LIKE ? ESCAPE '\\'")
        params.append(_like(query.name))
    if query.type:
        where.append("(format = ? OR media_type = ? OR media_type LIKE ? ESCAPE '\\')")
        params.extend([query.type, query.type, query.type.replace("%", "") + "/%"])
    if query.tag:
        where.append("id IN (SELECT asset_id FROM asset_tags WHERE tag = ?)")
        params.append(query.tag)
    filters = list(where)
    filter_params = list(params)
    if query.cursor:
        value, last_id = _decode_cursor(query.cursor)
        op = "<" if query.descending else ">"
        where.append(f"({column}, id) {op} (?, ?)")
        params.extend([value, last_id])
    order = "DESC" if query.descending else "ASC"
    sql = (f"{SELECT} WHERE {' AND '.join(where)} ORDER BY {column} {order}, id {order} "
           f"LIMIT ?")
    rows = conn.execute(sql, [*params, query.limit + 1]).fetchall()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    items = [row_to_asset(r) for r in rows]
    duplicates_of(conn, items)
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _encode_cursor(last[column], last["id"])
    total = None
    if not query.cursor:
        total = conn.execute(f"SELECT COUNT(*) FROM assets WHERE {' AND '.join(filters)}",
                             filter_params).fetchone()[0]
    return {"category": query.category, "items": items, "next_cursor": next_cursor,
            "total": total}
