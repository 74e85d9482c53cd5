"""Validating answers and messages against the schemas the API serves in its own OpenAPI description."""

from __future__ import annotations

from typing import Any

import jsonschema_rs


def json_schema(node: Any, components: dict[str, Any]) -> Any:
    """OpenAPI 3.0 → JSON Schema: ``$ref`` inlined, ``nullable`` as an alternative null."""
    if isinstance(node, list):
        return [json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = json_schema(components[node["$ref"].rsplit("/", 1)[-1]], components)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **rest}
    out = {k: json_schema(v, components) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [{"type": "null"}, out]}
    return out


class Contract:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.components = spec["components"]["schemas"]

    def errors(self, name: str, value: Any) -> list[str]:
        validator = jsonschema_rs.Draft7Validator(json_schema({"$ref": f"#/{name}"}, self.components))
        return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(value)]
