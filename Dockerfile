# jitaccess: one image for the API, the workers and the one-shot jobs (db upgrade, OpenBao and
# Temporal setup). Multi-stage: build a virtualenv, copy it into a slim runtime that runs as a
# non-root user. No secret is baked in: keys, tokens and passwords come from the environment or
# from files (JITACCESS_SECRETS_DIR, e.g. compose `secrets:` under /run/secrets).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/jitaccess
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jitaccess ./jitaccess
# postgres: the ledger on PostgreSQL; otlp: traces when OTEL_EXPORTER_OTLP_ENDPOINT is set
RUN /opt/jitaccess/bin/pip install --upgrade pip \
 && /opt/jitaccess/bin/pip install '.[postgres,otlp]'

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/jitaccess/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 jitaccess \
 && useradd --system --uid 10001 --gid jitaccess --home-dir /var/lib/jitaccess --create-home jitaccess \
 && mkdir -p /openbao/init /run/openbao \
 && chown jitaccess:jitaccess /openbao/init /run/openbao
COPY --from=build /opt/jitaccess /opt/jitaccess
USER 10001:10001
WORKDIR /var/lib/jitaccess
EXPOSE 8000 9464
ENTRYPOINT ["jitaccess"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
