"""The OpenAPI links of the app's document point at real operations, parameters and response fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.openapi_links import LINKS
from tests.fixtures.routes import built_app


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    with built_app() as app:
        yield app.openapi()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _has_pointer(document: dict[str, Any], schema: dict[str, Any], pointer: str) -> bool:
    """Whether ``#/a/0/b`` names a field of ``schema`` (a number steps into an array's items)."""
    for part in pointer.strip("/").split("/"):
        schema = _resolve(document, schema)
        options = [s for s in schema.get("anyOf", []) if _resolve(document, s).get("type") != "null"]
        schema = _resolve(document, options[0]) if options else schema
        if part.isdigit():
            schema = schema.get("items", {})
        elif part in schema.get("properties", {}):
            schema = schema["properties"][part]
        else:
            return False
    return True


def test_every_link_is_in_the_document_and_extracts_existing_fields(document: dict[str, Any]) -> None:
    operation_ids = {
        operation["operationId"]: operation
        for operations in document["paths"].values()
        for operation in operations.values()
    }
    count = 0
    for (method, path, status), links in LINKS.items():
        response = document["paths"][path][method.lower()]["responses"][status]
        body = response["content"]["application/json"]["schema"]
        assert set(response["links"]) == {link.name for link in links}
        for link in links:
            definition = response["links"][link.name]
            target = operation_ids[definition["operationId"]]
            names = {p["name"] for p in target.get("parameters", [])}
            expressions = {**definition.get("parameters", {}), **definition.get("requestBody", {})}
            for name in definition.get("parameters", {}):
                assert name.split(".")[-1] in names, (link.name, name)
            for expression in expressions.values():
                if expression.startswith("$response.body#"):
                    pointer = expression.removeprefix("$response.body#")
                    assert _has_pointer(document, body, pointer), (link.name, expression)
            count += 1
    assert count >= 25
