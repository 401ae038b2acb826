"""The rows of what an origin keeps with its decision, encoded once for both stores: the held
deployment (``deployment_gates``) and the queued job (``jobs``); and a job read back for operators. Encoding happens in the caller's
thread, before any transaction, so a record that cannot be stored fails only its own decision."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import Unavailable
from app.store.base import JobSummary, Kept, QueuedJob

# (repository_id, run_id, environment, state, updated_at, record)
DeploymentRow = tuple[int, int, str, str, int, str]
# (id, kind, topic, body, body_sha256, due_at, created_at, updated_at)
JobRow = tuple[str, str, str, bytes, str, int, int, int]


def deployment_row(record: dict[str, Any], now: int) -> DeploymentRow:
    """The ``deployment_gates`` row of a held deployment record. Raises ``Unavailable``
    (store-unavailable) for a record without its key fields."""
    try:
        text = json.dumps(record, separators=(",", ":"), sort_keys=True)
        return (
            int(record["repository_id"]),
            int(record["run_id"]),
            str(record["environment"]),
            str(record["state"]),
            now,
            text,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unavailable(
            f"the held deployment cannot be recorded ({exc.__class__.__name__})", code="store-unavailable"
        ) from exc


def job_summary(row: Sequence[Any]) -> JobSummary:
    """A ``jobs`` row read in the columns of the stores' ``_SELECT_SUMMARY``."""
    return JobSummary(
        id=str(row[0]),
        kind=str(row[1]),
        topic=str(row[2]),
        state=str(row[3]),
        attempts=int(row[4]),
        due_at=int(row[5]),
        created_at=int(row[6]),
        updated_at=int(row[7]),
        last_error=None if row[8] is None else str(row[8]),
    )


def job_row(job: QueuedJob, now: int) -> JobRow:
    """The ``jobs`` row of a job queued now (due at once)."""
    digest = hashlib.sha256(job.body).hexdigest()
    return (job.id, job.kind, job.topic, job.body, digest, now, now, now)


# (id, kind, topic, body, body_sha256, due_at, created_at, updated_at, subject, last_error)
CoalescedRow = tuple[str, str, str, bytes, str, int, int, int, str, str]


def coalesced_row(
    job_id: str, kind: str, topic: str, digest: str, subject: str, into: str, now: int
) -> CoalescedRow:
    """The ``jobs`` row of a delivery covered by the waiting job ``into`` (no body: it is never run)."""
    return (job_id, kind, topic, b"", digest, now, now, now, subject, f"coalesced into {into}")


@dataclass(frozen=True)
class KeptRows:
    """A decision's :class:`~app.store.base.Kept`, encoded as the rows its transaction writes."""

    jobs: tuple[JobRow, ...] = ()
    deployments: tuple[DeploymentRow, ...] = ()


def kept_rows(keep: Kept, now: int) -> KeptRows:
    deployments = (deployment_row(keep.deployment, now),) if keep.deployment is not None else ()
    return KeptRows(tuple(job_row(job, now) for job in keep.jobs), deployments)
