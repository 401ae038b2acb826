# agent-gate: built from the hashed lock, run by `agent-gate serve` (the same gunicorn configuration as
# everywhere else, app/gunicorn_conf.py) as a numeric non-root user.
# Mount the org's policies at /etc/agent-gate/policies (the image ships none and refuses to start
# without one) and a volume at /var/lib/agent-gate for the SQLite store; configure with GATE_*
# variables (docs/configuration.md). Linted by hadolint in the test suite (tests/test_dockerfile.py).
#
# The base is pinned by digest (a content address: a different image can never answer to it). To move
# it: docker buildx imagetools inspect python:3.11-slim-bookworm, then replace both digests below.

# --- build: the locked dependencies and the project's wheel, in a virtualenv copied whole below ---
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY requirements/ ./requirements/
# Every package at its locked version and hash: the build backend in one venv, the runtime in another.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r requirements/build.txt \
 && python -m venv /opt/agent-gate \
 && /opt/agent-gate/bin/pip install --require-hashes -r requirements/runtime.txt

COPY pyproject.toml README.md LICENSE ./
COPY app ./app
# The project itself with no further resolving; then no installer or build tool is left in the runtime venv.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation -w /tmp/wheels . \
 && /opt/agent-gate/bin/pip install --no-deps /tmp/wheels/agent_gate-*.whl \
 && /opt/agent-gate/bin/pip uninstall --yes setuptools pip

# --- runtime: the interpreter, the virtualenv and nothing else ---
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="agent-gate" \
      org.opencontainers.image.description="Governed, attributable, least-privilege actions for AI coding agents in GitHub Actions" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/acme/agent-gate" \
      org.opencontainers.image.documentation="https://github.com/acme/agent-gate/tree/main/docs"

ENV PATH=/opt/agent-gate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATE_DATA_DIR=/var/lib/agent-gate \
    GATE_POLICY_PATH=/etc/agent-gate/policies

COPY --from=build /opt/agent-gate /opt/agent-gate
# The store's volume belongs to the gate's user; the policy directory stays root's and read-only.
RUN mkdir -p /var/lib/agent-gate /etc/agent-gate/policies \
 && chown 10001:10001 /var/lib/agent-gate

USER 10001:10001
EXPOSE 8080
VOLUME ["/var/lib/agent-gate"]

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

# The same command the tests start (tests/test_server_edges.py): gunicorn with app/gunicorn_conf.py.
CMD ["agent-gate", "serve", "--host", "0.0.0.0", "--port", "8080"]
