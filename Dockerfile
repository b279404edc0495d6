# syntax=docker/dockerfile:1
# The gateway, served by granian (one worker per core) behind tini. Production runs
# set DATABASE_URL to a managed PostgreSQL; the embedded server is for development.

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/medpay
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/medpay/bin/pip install --no-cache-dir . granian

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /srv/medpay --create-home medpay
COPY --from=build /opt/medpay /opt/medpay
ENV PATH=/opt/medpay/bin:$PATH PYTHONUNBUFFERED=1 MEDPAY_DATA_DIR=/srv/medpay/data
USER medpay
WORKDIR /srv/medpay
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
# Migrations first (idempotent), then the gateway; WEB_CONCURRENCY defaults to the cores.
# Slow clients (docs/operations.md): a request's headers within 10 s (the same timer closes an
# idle keep-alive connection), at most 64 KiB of headers (431), 30 s to drain on SIGTERM.
CMD ["sh", "-c", "medpay migrate && exec granian --interface asgi --factory --host 0.0.0.0 --port 8080 --workers ${WEB_CONCURRENCY:-$(nproc)} --http1-header-read-timeout 10000 --http1-buffer-size 65536 --backpressure 1000 --workers-kill-timeout 30 medpay.asgi:create_app_from_environment"]
