"""What a workflow file asks of GitHub, as far as the gate is concerned: per job, its environment,
whether it gets an OIDC identity, whether it asks the gate, and which reusable workflow it calls.

Pure parsing (``agent-gate doctor`` fetches the files through ``app.github.protection``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# A step that asks the gate: the composite action, wherever it is hosted (pinned or not).
_GATE_ACTION = re.compile(r"(^|/)agent-gate/action@")


@dataclass(frozen=True)
class Job:
    """What one job of a workflow asks of GitHub, as far as the gate is concerned."""

    workflow: str
    job: str
    environment: str | None = None  # a literal environment name
    environment_expression: str | None = None  # ``environment: ${{ ... }}``: unknown until run time
    id_token: bool = False
    asks_gate: bool = False
    calls: str | None = None  # ``uses:`` of a job that calls a reusable workflow
    inherits_permissions: bool = False  # neither the job nor its workflow says `permissions:`

    @property
    def where(self) -> str:
        return f"{self.workflow} job {self.job}"

    @property
    def exposed(self) -> bool:
        """Runs steps with an OIDC identity outside any environment, and not to ask the gate. (A job in
        an environment is held by the environment's rule: the environment's finding says so.)"""
        return (
            self.calls is None
            and self.id_token
            and not self.asks_gate
            and self.environment is None
            and self.environment_expression is None
        )


def workflow_jobs(path: str, text: str) -> list[Job]:
    """The jobs of one workflow file. Raises ``ValueError`` when it is not a workflow."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError("not valid YAML") from exc
    if not isinstance(loaded, dict) or not isinstance(loaded.get("jobs"), dict):
        raise ValueError("no jobs: mapping")
    default = loaded.get("permissions")
    jobs: list[Job] = []
    for name, job in loaded["jobs"].items():
        if not isinstance(job, dict):
            continue
        env = job.get("environment")
        env_name = env.get("name") if isinstance(env, dict) else env
        literal = str(env_name) if env_name is not None else None
        expression = literal if literal is not None and "${{" in literal else None
        raw_steps = job.get("steps")
        steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
        jobs.append(
            Job(
                workflow=path,
                job=str(name),
                environment=None if expression else literal,
                environment_expression=expression,
                id_token=_grants_id_token(job.get("permissions", default)),
                asks_gate=any(
                    isinstance(s, dict) and _GATE_ACTION.search(str(s.get("uses", ""))) for s in steps
                ),
                calls=str(job["uses"]) if "uses" in job else None,
                inherits_permissions="permissions" not in job and default is None,
            )
        )
    return jobs


def _grants_id_token(permissions: Any) -> bool:
    """Whether a ``permissions:`` value gives the job an OIDC token. Without one, GitHub's default
    token permissions never include ``id-token``."""
    if permissions == "write-all":
        return True
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"
