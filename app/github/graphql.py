"""GitHub's GraphQL API: the queries the gate makes, and reading their answers.

The gate asks GraphQL one thing REST cannot answer: who the co-authors of a commit are, as GitHub
resolves ``Co-authored-by:`` trailers to accounts (``Commit.authors``: the author, then each
co-author, with the account the address belongs to, if any). Every query here is validated in the
tests against GitHub's published schema (tests/fixtures/github-graphql/).
"""

from __future__ import annotations

from typing import Any

from app.errors import GitHubError

# The commits of a pull request with their authors and co-authors, 100 commits a page.
COMMIT_AUTHORS = """
query($owner: String!, $name: String!, $number: Int!, $cursor: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      commits(first: 100, after: $cursor) {
        pageInfo { hasNextPage endCursor }
        nodes { commit { oid authors(first: 20) { nodes { email name user { login databaseId } } } } }
      }
    }
  }
}
"""
QUERIES = (COMMIT_AUTHORS,)
MAX_COMMIT_PAGES = 3  # a PR lists at most 250 commits; past that the gate fails closed anyway


def graphql_url(api_url: str) -> str:
    """GitHub.com answers GraphQL at ``/graphql`` beside its REST API; GitHub Enterprise Server at
    ``/api/graphql`` beside ``/api/v3``."""
    base = api_url.rstrip("/")
    return base.removesuffix("/v3") + "/graphql" if base.endswith("/api/v3") else base + "/graphql"


def data_of(answer: Any, what: str) -> dict[str, Any]:
    """The ``data`` of an answer; GraphQL reports errors in a 200 answer, so they are raised here."""
    if not isinstance(answer, dict):
        raise GitHubError(
            f"GitHub's GraphQL answer is not an object while {what}", code="github-unexpected-answer"
        )
    errors = answer.get("errors")
    if errors:
        first = (
            errors[0].get("message", "") if isinstance(errors, list) and isinstance(errors[0], dict) else ""
        )
        raise GitHubError(
            f"GitHub's GraphQL API refused the query while {what}: {str(first)[:200]}",
            code="github-unexpected-answer",
        )
    data = answer.get("data")
    if not isinstance(data, dict):
        raise GitHubError(
            f"GitHub's GraphQL answer has no data while {what}", code="github-unexpected-answer"
        )
    return data
