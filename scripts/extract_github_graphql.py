#!/usr/bin/env python3
"""Extract the part of GitHub's published GraphQL schema that agent-gate's queries use.

Source: the npm package ``@octokit/graphql-schema``, file ``schema.graphql`` (GitHub's own
description of its GraphQL API). The full schema is 1.2 MB and, as published, not valid for a
strict GraphQL implementation (duplicate fields, deprecation mismatches), so the extract keeps
exactly the types and fields the gate's queries select, with their argument and field types as
GitHub declares them, as a small valid schema. The tests validate every query of the gate against
it, and the fake GitHub executes those queries on it, so the answers have GitHub's shape.

Usage (see tests/fixtures/github-graphql/README.md for the recorded provenance)::

    npm pack @octokit/graphql-schema@15.26.1      # in a scratch directory
    tar xzf octokit-graphql-schema-15.26.1.tgz
    python scripts/extract_github_graphql.py package tests/fixtures/github-graphql/schema.graphql
"""

from __future__ import annotations

import sys
from pathlib import Path

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    get_named_type,
    parse,
    specified_scalar_types,
    visit,
)
from npm_package import read_package_file  # scripts/, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.github.graphql import QUERIES  # the gate's own queries, imported after the path


def used_fields(schema_sdl: str) -> dict[str, dict[str, GraphQLField]]:
    schema = build_schema(schema_sdl, assume_valid_sdl=True)
    used: dict[str, dict[str, GraphQLField]] = {"Query": {}}
    named: dict[str, GraphQLNamedType] = {}

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = info.get_parent_type()
            field = info.get_field_def()
            if parent is None or field is None:
                raise SystemExit(f"{node.name.value}: not in GitHub's schema")
            used.setdefault(parent.name, {})[node.name.value] = field
            named[get_named_type(field.type).name] = get_named_type(field.type)
            for arg in field.args.values():
                named[get_named_type(arg.type).name] = get_named_type(arg.type)

    for query in QUERIES:
        info = TypeInfo(schema)
        visit(parse(query), TypeInfoVisitor(info, Collect()))
    for name, kind in named.items():
        if isinstance(kind, GraphQLScalarType) and name not in specified_scalar_types:
            used.setdefault(f"scalar {name}", {})
        elif not isinstance(kind, GraphQLObjectType | GraphQLScalarType):
            raise SystemExit(f"{name}: only object and scalar types are extracted; extend the script")
    return used


def to_sdl(used: dict[str, dict[str, GraphQLField]], args_used: dict[tuple[str, str], set[str]]) -> str:
    out = []
    for type_name in sorted(used):
        if type_name.startswith("scalar "):
            out.append(type_name)
            continue
        lines = [f"type {type_name} {{"]
        for field_name, field in sorted(used[type_name].items()):
            keep = args_used.get((type_name, field_name), set())
            args = ", ".join(f"{a}: {field.args[a].type}" for a in sorted(keep))
            lines.append(f"  {field_name}{f'({args})' if args else ''}: {field.type}")
        lines.append("}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def arguments_used(schema_sdl: str) -> dict[tuple[str, str], set[str]]:
    schema = build_schema(schema_sdl, assume_valid_sdl=True)
    found: dict[tuple[str, str], set[str]] = {}

    class Args(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = info.get_parent_type()
            assert parent is not None
            found.setdefault((parent.name, node.name.value), set()).update(
                a.name.value for a in node.arguments or ()
            )

    for query in QUERIES:
        info = TypeInfo(schema)
        visit(parse(query), TypeInfoVisitor(info, Args()))
    return found


def main(argv: list[str]) -> int:
    read = read_package_file(argv, "schema.graphql", __doc__)
    if read is None:
        return 2
    source, target = read
    sdl = source.raw.decode("utf-8")
    header = (
        f"# Extracted from {source.name} {source.version} (schema.graphql, sha256 "
        f"{source.provenance()['file_sha256']})\n# by scripts/extract_github_graphql.py: only what the gate's "
        "queries select.\n\n"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + to_sdl(used_fields(sdl), arguments_used(sdl)))
    print(f"wrote {target} from {source.name} {source.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
