"""The gate's GraphQL queries are valid against GitHub's published schema, and answers are read strictly."""

from __future__ import annotations

import graphql
import pytest

from app.errors import GitHubError
from app.github.graphql import QUERIES, data_of, graphql_url
from tests.fake_github import GRAPHQL_SCHEMA, graphql_schema


@pytest.mark.parametrize("query", QUERIES)
def test_every_query_is_valid_against_githubs_schema(query):
    assert graphql.validate(graphql_schema(), graphql.parse(query)) == []


def test_the_extract_records_where_it_came_from():
    first = GRAPHQL_SCHEMA.read_text().splitlines()[0]
    assert first.startswith("# Extracted from @octokit/graphql-schema 15.26.1 (schema.graphql, sha256 ")


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
    ],
    ids=["github.com", "enterprise-server"],
)
def test_the_graphql_endpoint_sits_beside_the_rest_api(api_url, expected):
    assert graphql_url(api_url) == expected


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"errors": [{"message": "Could not resolve to a Repository"}]}, "refused the query"),
        ({"data": None}, "has no data"),
        ([], "is not an object"),
    ],
    ids=["graphql-errors-in-a-200", "no-data", "not-an-object"],
)
def test_an_answer_without_data_is_an_error_never_an_empty_result(answer, message):
    with pytest.raises(GitHubError, match=message):
        data_of(answer, "resolving co-authors")
