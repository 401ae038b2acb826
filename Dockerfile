# agent-gate under gunicorn with the app factory, as a non-root user.
# Configure with GATE_* variables (docs/configuration.md); mount policies at /etc/agent-gate/policies
# and a volume for the SQLite store at /var/lib/agent-gate.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATE_DATA_DIR=/var/lib/agent-gate \
    GATE_POLICY_PATH=/etc/agent-gate/policies

WORKDIR /opt/agent-gate
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install . \
 && groupadd --system --gid 10001 gate \
 && useradd --system --uid 10001 --gid gate --home-dir /nonexistent --shell /usr/sbin/nologin gate \
 && mkdir -p /var/lib/agent-gate /etc/agent-gate \
 && chown gate:gate /var/lib/agent-gate

COPY --chown=root:root policies /etc/agent-gate/policies

USER gate
EXPOSE 8080
VOLUME ["/var/lib/agent-gate"]

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

# Sync workers = cores suit CPU-bound decisions; see docs/configuration.md for gthread when
# decisions wait on GitHub.
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "--workers", "2", "--worker-class", "sync", \
     "--timeout", "30", "--access-logfile", "-", "app:create_app()"]
