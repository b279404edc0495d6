# syntax=docker/dockerfile:1
# The gateway, served by granian (one worker per core) behind tini, as a non-root user.
# Production runs set DATABASE_URL to a managed PostgreSQL (the embedded server is for
# development). What is installed is exactly requirements.lock, hash for hash; see
# docs/operations.md ("The container") for how the lock is refreshed and what
# scripts/container-check verifies of this file without a Docker daemon.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/medpay
# The locked set first (its layer is reused while the lock is unchanged), then medpay
# itself with no dependency of its own choosing and the locked setuptools as its backend.
COPY requirements.lock ./
RUN /opt/medpay/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/medpay/bin/pip install --no-deps --no-build-isolation . \
    && /opt/medpay/bin/pip check

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 medpay \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/medpay --create-home medpay
COPY --from=build /opt/medpay /opt/medpay
COPY scripts/container-start /usr/local/bin/medpay-container-start
ENV PATH=/opt/medpay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEDPAY_DATA_DIR=/srv/medpay/data \
    MEDPAY_HOST=0.0.0.0 \
    MEDPAY_PORT=8080 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/medpay-metrics
# Numeric, so that a runtime that checks for a non-root user needs no /etc/passwd lookup.
USER 10001:10001
WORKDIR /srv/medpay
EXPOSE 8080
# Liveness, not readiness: a province or the database being down is no reason to
# restart the container (docs/operations.md, "Health").
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["medpay-container-start"]
