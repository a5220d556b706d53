"""OpenMeter's OpenAPI spec (vendored in openmeter_site/api/, which serves it as the API's documentation) as JSON Schema
validators for response bodies."""

import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "openmeter_site" / "api" / "openapi.yaml"


@cache
def spec() -> dict[str, Any]:
    return yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes an explicit null alternative; refs are rebased."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k not in ("discriminator", "example", "examples")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _defs() -> dict[str, Any]:
    return _to_json_schema(spec()["components"]["schemas"])


@cache
def validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = {"$defs": _defs(), "$ref": f"#/$defs/{schema_name}"}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_matches(body: Any, schema_name: str) -> None:
    error = jsonschema.exceptions.best_match(validator(schema_name).iter_errors(body))
    if error is not None:
        raise AssertionError(f"{schema_name} at {error.json_path}: {error.message[:500]}")


# --- every response of every operation ---------------------------------------------------------------------

@cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    """Path templates as patterns, literal segments before parameters (`/plans/{id}/next` before `/plans/{id}`)."""
    templates = sorted(spec()["paths"], key=lambda p: (-p.count("/"), p.count("{"), p))
    return [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"), t) for t in templates]


def operation_of(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The spec's (path template, operation) for a request, or None when the spec has no such operation."""
    for pattern, template in _routes():
        if pattern.match(path):
            operation = spec()["paths"][template].get(method.lower())
            return (template, operation) if operation else None
    return None


def response_schema(operation: dict[str, Any], status: int, content_type: str) -> Any | None:
    """The JSON schema the spec gives this status (else its `default`) and content type; None if it gives none."""
    responses = operation.get("responses", {})
    response = responses.get(str(status)) or responses.get("default") or {}
    media = (response.get("content") or {}).get(content_type.split(";")[0].strip())
    return None if media is None or "schema" not in media else _to_json_schema(media["schema"])


@cache
def _schema_validator(schema_json: str) -> jsonschema.Draft202012Validator:
    schema = {"$defs": _defs(), **json.loads(schema_json)}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@cache
def _response_validator(method: str, template: str, status: int, media: str) -> jsonschema.Draft202012Validator | None:
    schema = response_schema(spec()["paths"][template][method.lower()], status, media)
    return None if schema is None else _schema_validator(json.dumps(schema, sort_keys=True))


def assert_response_matches_spec(method: str, path: str, status: int, content_type: str, body: Any) -> None:
    """A JSON (or problem+json) response of an operation of the spec validates against the schema the spec declares
    for its status. Paths outside the spec (health, metrics, docs) and other content types are not checked."""
    found = _operation_cached(method, path)
    if found is None:
        return
    template = found
    validator = _response_validator(method, template, status, content_type.split(";")[0].strip())
    if validator is None:
        raise AssertionError(f"{method} {template} answered {status} {content_type}, which the spec does not declare")
    errors = [e for e in validator.iter_errors(body) if not _known_difference(e)]
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        raise AssertionError(f"{method} {template} {status} at {error.json_path}: {error.message[:500]}")


# Where we answer as the Go server does although its own spec says otherwise (README, "Known differences"):
# (the last element of the failing path, the schema keyword, the value) → why.
KNOWN_DIFFERENCES: dict[tuple[str, str, str], str] = {
    ("subjectKey", "pattern", ""): "V1 `subjectKey` carries the spec's Key pattern; subject keys are free-form "
                                   "strings (any event subject), and upstream answers them as they are",
    ("namespaceId", "pattern", "default"): "the Stripe webhook answers upstream's namespace name, `default`",
    ("status", "enum", "deleted"): "a deleted invoice's status is `deleted`, the prefix of its extended status, as "
                                   "upstream's ShortStatus (the spec's enum lacks it)",
    ("", "required", "expiration"): "V1 grants that never expire have no `expiration` (the V1 schema requires it; "
                                    "there is no value meaning never)",
}


def _known_difference(error: jsonschema.ValidationError) -> bool:
    """An error (or, for anyOf/oneOf, every alternative's) that is one of the KNOWN_DIFFERENCES."""
    if error.context:
        by_alternative: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            by_alternative.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
        return any(all(_known_difference(e) for e in subs) for subs in by_alternative.values())
    last = str(error.absolute_path[-1]) if error.absolute_path else ""
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return bool(missing) and ("", "required", missing[0]) in KNOWN_DIFFERENCES
    value = error.instance if isinstance(error.instance, str) else ""
    return (last, str(error.validator), value) in KNOWN_DIFFERENCES or (
        last, str(error.validator), "") in KNOWN_DIFFERENCES


@lru_cache(maxsize=4096)
def _operation_cached(method: str, path: str) -> str | None:
    found = operation_of(method, path)
    return None if found is None else found[0]
