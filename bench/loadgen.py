"""The load generators of the HTTP benchmarks: wrk with a fresh token per request, or client threads.

wrk (``apt-get install wrk``) runs a closed loop of C keep-alive connections through a Lua script
that takes each request's token from a file; without wrk, client threads in the benchmark's own
process do the same (and then compete with the servers for the same cores).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests

Result = tuple[float, float, float]  # requests/s, p50 ms, p99 ms

# One wrk thread: the load generator should take as little of the 2 cores as it can. Each request
# takes the next token of the file; at the last wanted one the thread stops and writes a marker
# file, on which this script interrupts wrk (wrk otherwise runs for its whole -d, and reports that
# as the duration). The file holds a few more tokens than requests, for those in flight at the stop.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
local tokens, i, wanted, marker, body = {}, 0, 0, "", ""
calls, answered = 0, 0  -- globals: read by done() through thread:get

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  wanted = tonumber(args[2])
  marker = args[3]
  body = args[4]
end
function request()
  i = i + 1
  if i == wanted then
    wrk.thread:stop()
    io.open(marker, "w"):close()
  end
  return wrk.format("POST", "/v1/decisions",
    {["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}, body)
end
%(response)s
function done(summary, latency, requests)
  local c, a = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("calls"); a = a + t:get("answered") end
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, c, a))
end
"""


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def ready(url: str, path: str, ok: tuple[int, ...] = (200, 405)) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + path, timeout=2).status_code in ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def python_load(
    urls: list[str], tokens: list[str], concurrency: int, body: dict[str, Any], *, path: str = "/v1/decisions"
) -> Result:
    """Requests/s, p50 and p99 in ms; request i goes to urls[i % len(urls)]."""
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(len(tokens)))

    def client() -> None:
        session = requests.Session()
        session.trust_env = False
        mine = []
        for i in cursor:
            start = time.perf_counter()
            r = session.post(
                f"{urls[i % len(urls)]}{path}",
                json=body,
                headers={"Authorization": f"Bearer {tokens[i]}"},
                timeout=30,
            )
            mine.append(time.perf_counter() - start)
            if r.status_code != 200:
                raise SystemExit(f"unexpected {r.status_code}: {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    latencies.sort()
    return (
        len(latencies) / elapsed,
        statistics.median(latencies) * 1e3,
        latencies[int(len(latencies) * 0.99)] * 1e3,
    )


# Sums a number the answers carry (the decision's github_api_calls) when asked to.
_COUNT_CALLS = r"""
function response(status, headers, body)
  local c = body:match('"github_api_calls":(%d+)')
  if c then calls = calls + tonumber(c); answered = answered + 1 end
end
"""


def wrk_load(
    urls: list[str],
    tokens: list[str],
    concurrency: int,
    tmp: Path,
    body: dict[str, Any],
    *,
    path: str = "/v1/decisions",
    count_calls: bool = False,
) -> tuple[Result, float | None]:
    """One wrk per URL, at once, each with its share of connections and tokens; the result, and the
    mean ``github_api_calls`` of the answers with ``count_calls``. Two wrk runs give two sets of
    percentiles: the combined p50 is their mean and the p99 their maximum."""
    script = tmp / "fresh-tokens.lua"
    script.write_text(
        (WRK_SCRIPT % {"response": _COUNT_CALLS if count_calls else ""}).replace(
            '"/v1/decisions"', json.dumps(path)
        )
    )
    share = len(tokens) // len(urls)
    procs = []
    for n, url in enumerate(urls):
        mine = tokens[n * share : (n + 1) * share]
        listing = tmp / f"tokens-{n}.txt"
        listing.write_text("\n".join(mine) + "\n")
        wanted = len(mine) - concurrency  # the rest serve the requests in flight at the stop
        marker = tmp / f"done-{n}"
        marker.unlink(missing_ok=True)
        cmd = ["wrk", "-t1", f"-c{max(1, concurrency // len(urls))}", "-d600s", "--timeout", "30s", "-s",
               str(script), url, "--", str(listing), str(wanted), str(marker), json.dumps(body)]  # fmt: skip
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True), marker))
    for proc, marker in procs:
        while not marker.exists() and proc.poll() is None:
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)  # wrk then reports, with the time it actually ran
    rate, p50s, p99s, calls, answered = 0.0, [], [], 0, 0
    for proc, _ in procs:
        out, _ = proc.communicate(timeout=300)
        found = re.search(r"RESULT" + r" (\d+)" * 8, out)
        if found is None:
            raise SystemExit(f"wrk did not report: {out[-500:]}")
        count, micros, p50, p99, bad_status, socket_errors, c, a = (int(x) for x in found.groups())
        if bad_status or socket_errors:
            raise SystemExit(f"wrk saw {bad_status} non-2xx answers and {socket_errors} socket errors")
        rate += count / (micros / 1e6)
        p50s.append(p50 / 1e3)
        p99s.append(p99 / 1e3)
        calls, answered = calls + c, answered + a
    result = (rate, statistics.mean(p50s), max(p99s))
    return result, (calls / answered if count_calls and answered else None)
