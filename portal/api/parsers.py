"""A JSON parser with a size limit and positions in its errors.

DRF's JSONParser reads the whole stream, whatever its size, because it bypasses
Django's DATA_UPLOAD_MAX_MEMORY_SIZE check (that one guards `request.body` only).
This one reads at most the limit and says where malformed JSON broke. It also refuses what
would later break a view or the database: nesting deeper than MAX_DEPTH (a body of 100,000
`[` made json.loads raise RecursionError, a 500) and NUL characters in strings (PostgreSQL
text cannot store them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser, JSONParser

from portal.api.exceptions import MalformedJSON, MalformedYAML, PayloadTooLarge

MAX_DEPTH = 64


def _walk(value: Any) -> tuple[str, str] | None:
    """The path and problem of the first over-deep container or NUL string, else None."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "non_field_errors", _("Must not contain NUL characters.")
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return path or "non_field_errors", _("Nested deeper than %(depth)s levels.") % {
                    "depth": MAX_DEPTH
                }
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and "\x00" in key:
                    return path or "non_field_errors", _("Keys must not contain NUL characters.")
                where = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
                stack.append((child, where.lstrip("."), depth + 1))
    return None


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(_("Request body exceeds %(limit)s bytes.") % {"limit": limit})
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise MalformedJSON(
                _("Body is not valid %(encoding)s: %(reason)s.")
                % {"encoding": encoding, "reason": exc.reason},
                line=1,
                column=exc.start + 1,
            ) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedJSON(
                _("Malformed JSON at line %(line)s, column %(column)s: %(problem)s.")
                % {"line": exc.lineno, "column": exc.colno, "problem": exc.msg},
                line=exc.lineno,
                column=exc.colno,
            ) from exc
        except RecursionError as exc:
            raise MalformedJSON(
                _("JSON nested deeper than %(depth)s levels.") % {"depth": MAX_DEPTH},
                line=1,
                column=1,
            ) from exc
        # The walk costs a pass over the data; only bodies that may fail it pay for it.
        if "\\u0000" in text or text.count("[") + text.count("{") > MAX_DEPTH:
            problem = _walk(data)
            if problem is not None:
                raise ValidationError({problem[0]: [problem[1]]})
        return data


def _position(mark: Any) -> tuple[int, int]:
    """1-based line and column of a YAML mark (1, 1 without one)."""
    return (int(mark.line) + 1, int(mark.column) + 1) if mark is not None else (1, 1)


class BoundedYAMLParser(BaseParser):
    """YAML for the endpoints that take documents people write by hand (a pipeline's
    definition): the same size, depth and NUL limits as JSON, YAML's safe subset only, and
    no aliases (``*ref``): a few of them nested expand to billions of nodes for whatever
    walks the result ("billion laughs")."""

    media_type = "application/yaml"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(_("Request body exceeds %(limit)s bytes.") % {"limit": limit})
        try:
            text = raw.decode((parser_context or {}).get("encoding", settings.DEFAULT_CHARSET))
            for event in yaml.parse(text, Loader=yaml.SafeLoader):
                if isinstance(event, yaml.AliasEvent):
                    line, column = _position(event.start_mark)
                    raise MalformedYAML(
                        _("YAML aliases are not accepted (line %(line)s).") % {"line": line},
                        line=line,
                        column=column,
                    )
            data = yaml.safe_load(text)
        except UnicodeDecodeError as exc:
            raise MalformedYAML(
                _("Body is not text: %(reason)s.") % {"reason": exc.reason}, line=1, column=1
            ) from exc
        except yaml.MarkedYAMLError as exc:
            line, column = _position(exc.problem_mark or exc.context_mark)
            raise MalformedYAML(
                _("Malformed YAML at line %(line)s, column %(column)s: %(problem)s.")
                % {"line": line, "column": column, "problem": exc.problem},
                line=line,
                column=column,
            ) from exc
        except (yaml.YAMLError, RecursionError) as exc:
            raise MalformedYAML(
                _("Malformed YAML: %(problem)s.") % {"problem": exc}, line=1, column=1
            ) from exc
        problem = _walk(data)
        if problem is not None:
            raise ValidationError({problem[0]: [problem[1]]})
        return data
