#!/usr/bin/env python3
"""A worker's memory under a flood: the gate as served (glibc's malloc thresholds fixed, see
app/observe/memory.py) against the same gate with glibc's dynamic thresholds left on, in one run.

Each set-up is the gate under ``agent-gate serve --dev`` (2 workers x 16 threads, SQLite, a webhook
secret configured), flooded by client threads for ``--minutes`` with what the drills sent: forged
and malformed tokens, 60 KiB bodies, signed-looking webhook deliveries of a few KiB and of 3 MB
(refused on their signature after the whole body was read), unknown paths, and real read decisions.
Every ``--every`` seconds the resident memory (VmRSS) of each worker is sampled; printed are the
series and, per set-up, the growth from the end of the first minute (the warm-up: caches, arenas
and the first large bodies) to the end, and the largest and smallest worker RSS after warm-up.

The control differs only in ``GLIBC_TUNABLES=glibc.malloc.tcache_count=7``: glibc's default value,
set explicitly, which changes nothing in malloc but tells the gate that the operator chose malloc
settings (it then leaves them alone). The machine's cores are shared by the clients and the gate.

    .venv/bin/python bench/bench_memory.py [--minutes 3] [--every 10] [--clients 8] [--only tuned|control]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tokens.devissuer import AGENT_PRESET, DevIssuer  # noqa: E402
from bench.loadgen import port, ready  # noqa: E402

SECRET = "bench-memory-webhook-secret"  # a throwaway secret of this benchmark's own gate
CONTROL = {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"}  # glibc's default, set explicitly
BIG = 3 * 1024 * 1024


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the children of the master process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(entry.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flood(url: str, issuer: DevIssuer, clients: int, until: float, counts: dict[str, int]) -> None:
    """Client threads sending the mix until ``until``; ``counts`` gets the answers by status."""
    lock = threading.Lock()
    padding = "x" * (60 * 1024)
    delivery = b'{"action":"opened","zen":"' + b"y" * 4000 + b'"}'
    big = b'{"action":"edited","body":"' + b"z" * BIG + b'"}'

    def signed(body: bytes, *, forged: bool) -> dict[str, str]:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": f"bench-{time.monotonic_ns()}",
            "X-Hub-Signature-256": "sha256=" + ("0" * 64 if forged else digest),
            "Content-Type": "application/json",
        }

    def client(n: int) -> None:
        session = requests.Session()
        session.trust_env = False
        kinds = itertools.cycle(("token", "body", "hook", "big", "path", "real", "token", "hook"))
        for _ in range(n):  # each client starts at another point of the mix
            next(kinds)
        while time.monotonic() < until:
            kind = next(kinds)
            try:
                if kind == "token":
                    answer = session.post(
                        f"{url}/v1/decisions",
                        json={"action": "read"},
                        headers={"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
                        timeout=30,
                    )
                elif kind == "body":
                    answer = session.post(
                        f"{url}/v1/decisions",
                        json={"action": "read", "padding": padding},
                        headers={"Authorization": "Bearer not-a-token"},
                        timeout=30,
                    )
                elif kind in ("hook", "big"):
                    body = big if kind == "big" else delivery
                    answer = session.post(
                        f"{url}/v1/github/webhook", data=body, headers=signed(body, forged=True), timeout=60
                    )
                elif kind == "path":
                    answer = session.get(f"{url}/v1/{'a' * 200}", timeout=30)
                else:
                    token = issuer.mint(audience="agent-gate", **AGENT_PRESET)
                    answer = session.post(
                        f"{url}/v1/decisions",
                        json={"action": "read"},
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=30,
                    )
                status = str(answer.status_code)
            except requests.RequestException as exc:
                status = type(exc).__name__
            with lock:
                counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(
    name: str, extra_env: dict[str, str], args: argparse.Namespace
) -> tuple[list[list[float]], dict[str, int], str]:
    """Serve, flood and sample one set-up: RSS series per worker (MiB), answers by status, the log."""
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "var"
        issuer = DevIssuer(data)
        issuer.ensure_key()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
        env.update(
            {
                "GATE_DATA_DIR": str(data),
                "GATE_POLICY_PATH": str(ROOT / "policies"),
                "GATE_DATABASE": f"sqlite:///{tmp / 'gate.db'}",
                "GATE_WEBHOOK_SECRET": SECRET,
                "GATE_LOG_LEVEL": "INFO",
                "GATE_THREADS": "16",
                **extra_env,
            }
        )
        env.pop("GATE_DEV_MODE", None)
        free = port()
        log = tmp / "gate.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--dev", "--workers", "2", "--port", str(free)],
                env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{free}"
            ready(url, "/readyz")
            pids = worker_pids(proc.pid)
            counts: dict[str, int] = {}
            until = time.monotonic() + args.minutes * 60
            loader = threading.Thread(
                target=flood, args=(url, issuer, args.clients, until, counts), daemon=True
            )
            loader.start()
            series: list[list[float]] = [[] for _ in pids]
            print(f"{name}: workers {pids}", flush=True)
            while loader.is_alive():
                for n, pid in enumerate(pids):
                    series[n].append(rss_mib(pid))
                print(f"  {name} t={len(series[0]) * args.every - args.every:5d}s RSS MiB "
                      + " ".join(f"{s[-1]:6.1f}" for s in series), flush=True)  # fmt: skip
                loader.join(args.every)
            for n, pid in enumerate(pids):
                series[n].append(rss_mib(pid))
            restarted = worker_pids(proc.pid) != pids
        finally:  # the server goes whatever happened, so no gate outlives the benchmark
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        tuned = log.read_text(errors="replace").count("glibc malloc thresholds fixed")
        note = f"workers that fixed malloc's thresholds: {tuned}"
        if restarted:
            note += "; a worker was restarted during the flood (figures cover the first ones only)"
        return series, counts, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=int, default=10, help="seconds between RSS samples")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--only", choices=("tuned", "control"))
    args = parser.parse_args()
    setups = [("tuned", {}), ("control", CONTROL)]
    results = []
    for name, extra in setups:
        if args.only in (None, name):
            results.append((name, *run(name, extra, args)))
    warm = max(1, round(60 / args.every))
    print(
        f"\n{args.minutes:g} min flood, {args.clients} clients, 2 workers x 16 threads, {os.cpu_count()} cores"
    )
    print(
        f"{'set-up':8} {'growth after 1st min (MiB, per worker)':40} {'min..max RSS after warm-up':28} answers"
    )
    for name, series, counts, note in results:
        growth = " ".join(f"{s[-1] - s[min(warm, len(s) - 1)]:+6.1f}" for s in series)
        after = [v for s in series for v in s[warm:]] or [v for s in series for v in s]
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"{name:8} {growth:40} {min(after):6.1f}..{max(after):6.1f}{'':15} {answers} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
