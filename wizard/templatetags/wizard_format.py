"""How the wizard writes figures, sizes and times for people."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def size(value: Any) -> str:
    """Bytes as B, kB, MB or GB."""
    amount = float(value or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if round(amount, 1) < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return ""


@register.filter
def duration(seconds: Any) -> str:
    """Seconds as '45 s', '3 min 20 s' or '1 h 5 min'."""
    if seconds is None:
        return ""
    total = round(float(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def figures(values: dict[str, Any] | None) -> str:
    """An operation's figures: rows and tables for data, files and bytes for files."""
    values = values or {}
    parts = []
    if "rows_total" in values:
        parts.append(f"{values.get('rows', 0):,} of {values['rows_total']:,} rows")
    if "tables_total" in values:
        parts.append(f"{values.get('tables_done', 0)} of {values['tables_total']} tables")
    if values.get("rows_per_second"):
        parts.append(f"{values['rows_per_second']:,} rows/s")
    if "files_total" in values:
        parts.append(f"{values.get('files', 0)} of {values['files_total']} files")
    if "bytes_total" in values:
        parts.append(f"{size(values.get('bytes', 0))} of {size(values['bytes_total'])}")
    if values.get("bytes_per_second"):
        parts.append(f"{size(values['bytes_per_second'])}/s")
    return " · ".join(parts + _sync_figures(values))


def _sync_figures(values: dict[str, Any]) -> list[str]:
    """The online pre-copy's figures: how far behind the source, and what was verified."""
    parts = []
    if "rows_verified" in values:
        parts.append(
            f"{values['rows_verified']:,} rows in {values.get('tables_verified', 0)} tables "
            "verified on both systems"
        )
    if values.get("in_sync"):
        parts.append("in sync with the source")
    elif values.get("transactions_behind") is not None:
        behind = f"{values['transactions_behind']:,} transactions behind the source"
        if values.get("seconds_behind") is not None:
            behind += f" ({values['seconds_behind']} s)"
        parts.append(behind)
    if values.get("falling_behind"):
        parts.append(f"falling behind: a cutover now means about {values['window_seconds']} s")
    return parts


@register.filter
def percent(fraction: Any) -> int:
    """A fraction 0..1 as a whole percentage."""
    return max(0, min(100, int(float(fraction or 0) * 100 + 1e-9)))
