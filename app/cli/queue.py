"""``agent-gate queue list`` and ``queue retry``: the webhook jobs the queue holds, and a job given up
on queued again once its cause is fixed (GitHub back, the App's permissions granted)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime

import app.cli.options as options
from app.errors import InvalidRequest, NotFound


def register(sub: options.Subparsers) -> None:
    qsub = options.add_group(
        sub,
        "queue",
        help="list the webhook jobs, retry one given up on",
        description="The durable queue of verified webhook deliveries (merge checks, held deployments). "
        "A job that failed max_attempts times, or could never succeed, is given up (dead) and kept here.",
    )
    listing = qsub.add_parser(
        "list",
        help="the jobs, most recently changed first",
        description="List the queue's jobs, most recently changed first: id (the delivery id), topic (the "
        "event), state (queued, running, done, dead), attempts and the last error.",
    )
    listing.add_argument("--dead", action="store_true", help="only the jobs given up on")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N jobs (default 100)")
    options.add_database(listing)
    options.add_format(listing, "text", "json")
    listing.set_defaults(func=cmd_queue_list)

    retry = qsub.add_parser(
        "retry",
        help="queue a job given up on again",
        description="Queue a job given up on (dead) again, due now with its attempts counted afresh; the "
        "next queue worker runs it. A job that is queued, running or done is left as it is.",
    )
    retry.add_argument("job_id", metavar="ID", help="the job's id (`queue list`), its delivery id")
    options.add_database(retry)
    options.add_format(retry, "text", "json")
    retry.set_defaults(func=cmd_queue_retry)


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def cmd_queue_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InvalidRequest(f"--limit: got {args.limit}, expected 1 or more")
    store = options.existing_store(args.database)
    jobs = store.list_jobs(state="dead" if args.dead else None, limit=args.limit)
    if args.format == "json":
        sys.stdout.write(json.dumps([asdict(job) for job in jobs], indent=2) + "\n")
        return 0
    for job in jobs:
        print(f"{job.id} {job.state} {job.topic} ({job.kind}), attempts {job.attempts}, "
              f"queued {_when(job.created_at)}, changed {_when(job.updated_at)}")  # fmt: skip
        if job.last_error:
            print(f"  last error: {job.last_error}")
    what = "given-up job(s)" if args.dead else "job(s)"
    hint = "; `agent-gate queue retry ID` queues one again" if any(j.state == "dead" for j in jobs) else ""
    print(f"{len(jobs)} {what}{hint}")
    return 0


def cmd_queue_retry(args: argparse.Namespace) -> int:
    store = options.existing_store(args.database)
    was = store.retry_job(args.job_id, now=int(time.time()))
    if was is None:
        raise NotFound(f"no job {args.job_id} in the queue; `agent-gate queue list` names them")
    if was != "dead":
        why = {"done": "it ran to the end", "running": "a worker runs it now", "queued": "it runs when due"}
        raise InvalidRequest(
            f"job {args.job_id} is {was}, not given up ({why.get(was, 'nothing to retry')}): only a job "
            "given up on is queued again"
        )
    if args.format == "json":
        sys.stdout.write(json.dumps({"id": args.job_id, "state": "queued", "was": was}) + "\n")
    else:
        print(f"job {args.job_id} queued again: the next queue worker runs it (serve's queue threads or "
              "`agent-gate worker`)")  # fmt: skip
    return 0
