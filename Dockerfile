# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
# Exactly the versions in uv.lock (--locked: a lock that no longer matches pyproject.toml fails the
# build instead of being re-resolved), into /opt/venv, non-editable (src/ is not copied into the
# runtime image). The same uv as the Makefile's.
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON=/usr/local/bin/python3 UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1
RUN python -m pip install "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
RUN uv sync --locked --no-install-project --no-editable
COPY src ./src
RUN uv sync --locked --no-editable

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production ALEMBIC_CONFIG=/app/alembic.ini
RUN groupadd --system app && useradd --system --gid app --home-dir /app app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY alembic ./alembic
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# Production sets DATABASE_URL, STRIPE_* and JWT_SECRET; `serve` applies migrations first.
# Behind a load balancer also set TRUSTED_PROXIES (its addresses): otherwise X-Forwarded-For is
# ignored and every client is counted as the load balancer's address.
# Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (and OTEL_SERVICE_NAME) to send them to a collector.
CMD ["marketplace-api", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
