"""The strategies operations declare the problems they answer with, as problem details."""

import pytest
import yaml

pytestmark = pytest.mark.django_db

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def problem_of(operation: dict, status: str) -> dict:
    response = operation["responses"][status]
    assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}
    return response


def test_queueing_a_backtest_declares_the_per_user_cap(schema):
    operation = schema["paths"]["/api/v1/strategies/{id}/backtests/"]["post"]
    assert "202" in operation["responses"]
    cap = problem_of(operation, "429")
    assert "queued or running" in cap["description"]
    assert "too-many-backtests" in cap["description"]


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/strategies/", "post"), ("/api/v1/strategies/{id}/", "put"), ("/api/v1/strategies/{id}/", "patch")],
)
def test_publishing_without_the_role_is_declared(schema, path, method):
    refused = problem_of(schema["paths"][path][method], "403")
    assert "analysts" in refused["description"]
