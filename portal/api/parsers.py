"""A JSON parser with a size limit and positions in its errors.

DRF's JSONParser reads the whole stream, whatever its size, because it bypasses
Django's DATA_UPLOAD_MAX_MEMORY_SIZE check (that one guards `request.body` only).
This one reads at most the limit and says where malformed JSON broke.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from portal.api.exceptions import MalformedJSON, PayloadTooLarge


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
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise MalformedJSON(
                f"Body is not valid {encoding}: {exc.reason}.", line=1, column=exc.start + 1
            ) from exc
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedJSON(
                f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
                line=exc.lineno,
                column=exc.colno,
            ) from exc
