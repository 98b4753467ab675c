"""OpenAPI post-processing: every operation documents its problem-details errors."""

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Validation messages by field.",
        },
    },
    "required": ["type", "title", "status", "detail"],
}


def _problem_response(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def add_problem_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", _problem_response("Invalid input."))
            if "{" in path:
                responses.setdefault("404", _problem_response("Not found, or not yours."))
            if operation.get("security") and {} not in operation["security"]:
                responses.setdefault("401", _problem_response("Missing, invalid or expired credentials."))
            responses.setdefault("429", _problem_response("Too many requests; see Retry-After."))
            responses.setdefault("default", _problem_response("Unexpected error."))
            del method
    return result
