"""``/openapi/v2`` in protobuf: the Swagger 2.0 document as gnostic's ``openapi.v2.Document``.

client-go's ``OpenAPISchema()`` asks for ``/openapi/v2`` only as
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and unmarshals the answer into
gnostic's message (github.com/google/gnostic, ``openapiv2/OpenAPIv2.proto``): what kubectl
before 1.27 validates ``apply`` and ``create`` against, and reads for ``explain`` and for
``diff``'s and ``--dry-run=server``'s check that the kind supports dry runs.

:func:`encode` writes that message from the JSON document the emulator serves; the field numbers
below are the ``.proto``'s. As gnostic compiles a document, vendor extensions (``x-kubernetes-*``)
become ``NamedAny`` entries and the free-form values (``default``, ``enum``, ``example``) ``Any``
messages, both holding the value as YAML (what kube-openapi's parser unmarshals again); named
maps (``definitions``, ``properties``, ``paths``, ``responses``) become repeated ``Named*``
entries in the document's order. Keys the message has no field for are left out, as are the
security definitions (the emulator has no authentication).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from .protobuf import field_bytes, field_double, field_string, field_varint

Obj = dict[str, Any]
#: What clients ask for: client-go's ``Accept`` (the deprecated spelling), and the current one.
MEDIA_TYPES = (
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
)
#: The ``Content-Type`` of the answer: always the current spelling, as kube-openapi answers
#: (Go's ``mime.ParseMediaType``, which client-go runs on it, rejects the ``@``).
CONTENT_TYPE = MEDIA_TYPES[1]

# message -> {JSON key: (field number, kind)}. A kind is "string", "bool", "int" (int64),
# "double", "any" (an Any holding YAML), a message name, "[kind]" (repeated) or "{kind}" (a
# named map: a wrapper message whose field 1 repeats Named<kind> {name 1, value 2}). The key
# "x-" stands for every vendor extension (repeated NamedAny).
Fields = dict[str, tuple[int, str]]

# The validation keywords that PrimitivesItems, Header and the non-body parameters share, in
# the .proto's order; each message numbers them on from its own first one.
_PRIMITIVE_KEYWORDS = (
    ("type", "string"),
    ("format", "string"),
    ("items", "PrimitivesItems"),
    ("collectionFormat", "string"),
    ("default", "any"),
    ("maximum", "double"),
    ("exclusiveMaximum", "bool"),
    ("minimum", "double"),
    ("exclusiveMinimum", "bool"),
    ("maxLength", "int"),
    ("minLength", "int"),
    ("pattern", "string"),
    ("maxItems", "int"),
    ("minItems", "int"),
    ("uniqueItems", "bool"),
    ("enum", "[any]"),
    ("multipleOf", "double"),
)


def _numbered(*keys: tuple[str, str], first: int = 1) -> Fields:
    return {key: (first + i, kind) for i, (key, kind) in enumerate(keys)}


_PARAMETER_HEAD = (("required", "bool"), ("in", "string"), ("description", "string"))
# HeaderParameterSubSchema and PathParameterSubSchema: required 1 ... name 4, type 5 ...
# multipleOf 21, vendor_extension 22. Query and FormData add allow_empty_value 5 after name.
_SIMPLE_PARAMETER = _numbered(
    *_PARAMETER_HEAD, ("name", "string"), *_PRIMITIVE_KEYWORDS, ("x-", "ext")
)
_QUERY_PARAMETER = _numbered(
    *_PARAMETER_HEAD,
    ("name", "string"),
    ("allowEmptyValue", "bool"),
    *_PRIMITIVE_KEYWORDS,
    ("x-", "ext"),
)

MESSAGES: dict[str, Fields] = {
    "Document": {
        "swagger": (1, "string"),
        "info": (2, "Info"),
        "host": (3, "string"),
        "basePath": (4, "string"),
        "schemes": (5, "[string]"),
        "consumes": (6, "[string]"),
        "produces": (7, "[string]"),
        "paths": (8, "Paths"),
        "definitions": (9, "{Schema}"),
        "parameters": (10, "{Parameter}"),
        "responses": (11, "{Response}"),
        "tags": (14, "[Tag]"),
        "externalDocs": (15, "ExternalDocs"),
        "x-": (16, "ext"),
    },
    "Info": _numbered(
        ("title", "string"),
        ("version", "string"),
        ("description", "string"),
        ("termsOfService", "string"),
        ("contact", "Contact"),
        ("license", "License"),
        ("x-", "ext"),
    ),
    "Contact": _numbered(("name", "string"), ("url", "string"), ("email", "string"), ("x-", "ext")),
    "License": _numbered(("name", "string"), ("url", "string"), ("x-", "ext")),
    "ExternalDocs": _numbered(("description", "string"), ("url", "string"), ("x-", "ext")),
    "Tag": _numbered(
        ("name", "string"),
        ("description", "string"),
        ("externalDocs", "ExternalDocs"),
        ("x-", "ext"),
    ),
    "PathItem": _numbered(
        ("$ref", "string"),
        ("get", "Operation"),
        ("put", "Operation"),
        ("post", "Operation"),
        ("delete", "Operation"),
        ("options", "Operation"),
        ("head", "Operation"),
        ("patch", "Operation"),
        ("parameters", "[ParametersItem]"),
        ("x-", "ext"),
    ),
    "Operation": {
        "tags": (1, "[string]"),
        "summary": (2, "string"),
        "description": (3, "string"),
        "externalDocs": (4, "ExternalDocs"),
        "operationId": (5, "string"),
        "produces": (6, "[string]"),
        "consumes": (7, "[string]"),
        "parameters": (8, "[ParametersItem]"),
        "responses": (9, "Responses"),
        "schemes": (10, "[string]"),
        "deprecated": (11, "bool"),
        "x-": (13, "ext"),
    },
    "BodyParameter": _numbered(
        ("description", "string"),
        ("name", "string"),
        ("in", "string"),
        ("required", "bool"),
        ("schema", "Schema"),
        ("x-", "ext"),
    ),
    "HeaderParameterSubSchema": _SIMPLE_PARAMETER,
    "PathParameterSubSchema": _SIMPLE_PARAMETER,
    "QueryParameterSubSchema": _QUERY_PARAMETER,
    "FormDataParameterSubSchema": _QUERY_PARAMETER,
    "PrimitivesItems": _numbered(*_PRIMITIVE_KEYWORDS, ("x-", "ext")),
    "Header": _numbered(*_PRIMITIVE_KEYWORDS, ("description", "string"), ("x-", "ext")),
    "JsonReference": _numbered(("$ref", "string"), ("description", "string")),
    "Response": _numbered(
        ("description", "string"),
        ("schema", "SchemaItem"),
        ("headers", "{Header}"),
        ("examples", "{any}"),
        ("x-", "ext"),
    ),
    "Schema": _numbered(
        ("$ref", "string"),
        ("format", "string"),
        ("title", "string"),
        ("description", "string"),
        ("default", "any"),
        ("multipleOf", "double"),
        ("maximum", "double"),
        ("exclusiveMaximum", "bool"),
        ("minimum", "double"),
        ("exclusiveMinimum", "bool"),
        ("maxLength", "int"),
        ("minLength", "int"),
        ("pattern", "string"),
        ("maxItems", "int"),
        ("minItems", "int"),
        ("uniqueItems", "bool"),
        ("maxProperties", "int"),
        ("minProperties", "int"),
        ("required", "[string]"),
        ("enum", "[any]"),
        ("additionalProperties", "AdditionalPropertiesItem"),
        ("type", "TypeItem"),
        ("items", "ItemsItem"),
        ("allOf", "[Schema]"),
        ("properties", "{Schema}"),
        ("discriminator", "string"),
        ("readOnly", "bool"),
        ("xml", "Xml"),
        ("externalDocs", "ExternalDocs"),
        ("example", "any"),
        ("x-", "ext"),
    ),
    "FileSchema": _numbered(
        ("format", "string"),
        ("title", "string"),
        ("description", "string"),
        ("default", "any"),
        ("required", "[string]"),
        ("type", "string"),
        ("readOnly", "bool"),
        ("externalDocs", "ExternalDocs"),
        ("example", "any"),
        ("x-", "ext"),
    ),
    "Xml": _numbered(
        ("name", "string"),
        ("namespace", "string"),
        ("prefix", "string"),
        ("attribute", "bool"),
        ("wrapped", "bool"),
        ("x-", "ext"),
    ),
}


def to_yaml(value: Any) -> str:
    """A free-form value as gnostic keeps it in an ``Any`` (``merge\\n``, ``- group: ""``...)."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True)
    return text.removesuffix("...\n")  # PyYAML ends a lone scalar with a document end marker


def _any(value: Any) -> bytes:
    return field_string(2, to_yaml(value))  # Any: value 1 (a protobuf Any, unused), yaml 2


def _named(name: str, payload: bytes) -> bytes:
    return field_string(1, name) + field_bytes(2, payload)


def _payload(kind: str, value: Any) -> bytes:
    return _any(value) if kind == "any" else _message(kind, value)


def _single(number: int, kind: str, value: Any) -> bytes:
    """One field; proto3 leaves out empty strings and false, as Go's marshaller does."""
    if kind == "string":
        return field_string(number, value) if value else b""
    if kind == "bool":
        return field_varint(number, 1) if value else b""
    if kind == "int":
        return field_varint(number, int(value))
    if kind == "double":
        return field_double(number, float(value))
    return field_bytes(number, _payload(kind, value))


def _field(number: int, kind: str, key: str, value: Any) -> bytes:
    if kind == "ext":
        return field_bytes(number, _named(key, _any(value)))
    if kind.startswith("["):
        return b"".join(_single(number, kind[1:-1], item) for item in value)
    if kind.startswith("{"):
        entries = (field_bytes(1, _named(k, _payload(kind[1:-1], v))) for k, v in value.items())
        return field_bytes(number, b"".join(entries))
    return _single(number, kind, value)


def _message(name: str, value: Any) -> bytes:
    union = _UNIONS.get(name)
    if union is not None:
        return union(value)
    fields = MESSAGES[name]
    out = bytearray()
    for key, item in value.items():
        number, kind = fields.get("x-" if key.startswith("x-") else key, (0, ""))
        if number:
            out += _field(number, kind, key, item)
    return bytes(out)


# -- the messages that are a oneof, or a map with extensions, rather than an object's fields --


def _reference_or(message: str) -> Callable[[Obj], bytes]:
    """ParametersItem, ResponseValue: ``{"$ref": ...}`` is a JsonReference (field 2)."""

    def encode(value: Obj) -> bytes:
        if "$ref" in value:
            return field_bytes(2, _message("JsonReference", value))
        return field_bytes(1, _message(message, value))

    return encode


# NonBodyParameter's oneof: header_parameter_sub_schema 1, form_data 2, query 3, path 4.
_NON_BODY = {"header": (1, "Header"), "formData": (2, "FormData"), "query": (3, "Query")}


def _parameter(value: Obj) -> bytes:
    """Parameter: body_parameter 1, or non_body_parameter 2 chosen by ``in``."""
    where = value.get("in")
    if where == "body":
        return field_bytes(1, _message("BodyParameter", value))
    number, prefix = _NON_BODY.get(where or "", (4, "Path"))
    sub_schema = field_bytes(number, _message(f"{prefix}ParameterSubSchema", value))
    return field_bytes(2, sub_schema)


def _schema_item(value: Obj) -> bytes:
    """SchemaItem: schema 1, or file_schema 2 for ``type: file``."""
    if value.get("type") == "file":
        return field_bytes(2, _message("FileSchema", value))
    return field_bytes(1, _message("Schema", value))


def _additional_properties(value: Obj | bool) -> bytes:
    """AdditionalPropertiesItem: schema 1 or boolean 2 (a oneof: false is written too)."""
    if isinstance(value, bool):
        return field_varint(2, int(value))
    return field_bytes(1, _message("Schema", value))


def _type_item(value: str | list[str]) -> bytes:
    """TypeItem: repeated string value 1 (``type`` may be one name or a list)."""
    return b"".join(field_string(1, t) for t in ([value] if isinstance(value, str) else value))


def _items_item(value: Obj | list[Obj]) -> bytes:
    """ItemsItem: repeated Schema 1 (``items`` may be one schema or a list)."""
    return b"".join(
        field_bytes(1, _message("Schema", s))
        for s in ([value] if isinstance(value, dict) else value)
    )


def _keyed(entry: str, entry_number: int, extension_number: int) -> Callable[[Obj], bytes]:
    """Paths (vendor_extension 1, path 2) and Responses (response_code 1, vendor_extension 2):
    a map of named entries beside the vendor extensions."""

    def encode(value: Obj) -> bytes:
        out = bytearray()
        for key, item in value.items():
            if key.startswith("x-"):
                out += field_bytes(extension_number, _named(key, _any(item)))
            else:
                out += field_bytes(entry_number, _named(key, _message(entry, item)))
        return bytes(out)

    return encode


_UNIONS: dict[str, Callable[[Any], bytes]] = {
    "ParametersItem": _reference_or("Parameter"),
    "ResponseValue": _reference_or("Response"),
    "Parameter": _parameter,
    "SchemaItem": _schema_item,
    "AdditionalPropertiesItem": _additional_properties,
    "TypeItem": _type_item,
    "ItemsItem": _items_item,
    "Paths": _keyed("PathItem", 2, 1),
    "Responses": _keyed("ResponseValue", 1, 2),
}


def encode(document: Obj) -> bytes:
    """The ``openapi.v2.Document`` message of a Swagger 2.0 document (parsed JSON)."""
    return _message("Document", document)
