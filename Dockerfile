# syntax=docker/dockerfile:1
# Portcullis as a container image: build the wheel (with its contract artifacts, policy, migrations and
# page assets as package data), install it into a virtualenv, then copy only that virtualenv onto a slim
# Python 3.11 runtime that runs as a non-root user. docs/DEPLOY.md ("Containers") explains the settings.
#
#   docker build -t portcullis .                       # the server (the default target)
#   docker build --target perps-api -t perps-api .     # the sample perps API (sdk/examples/perps_api)

FROM python:3.11-slim AS build
# safe-pysha3 (and, on some platforms, coincurve) compile C: the compiler stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY contracts/artifacts ./contracts/artifacts
COPY policy ./policy
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/portcullis \
 && /opt/portcullis/bin/pip install --no-cache-dir /wheels/portcullis-*.whl

# The sample resource server and its SDK, in a virtualenv of their own.
FROM build AS build-perps-api
COPY sdk/python ./sdk/python
COPY sdk/examples/perps_api ./sdk/examples/perps_api
RUN python -m venv /opt/perps-api \
 && /opt/perps-api/bin/pip install --no-cache-dir './sdk/python[starlette]' uvicorn \
 && cp -r sdk/examples/perps_api "$(/opt/perps-api/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"

FROM python:3.11-slim AS perps-api
RUN useradd --system --uid 10002 --user-group --create-home --home-dir /var/lib/perps-api perps-api
COPY --from=build-perps-api /opt/perps-api /opt/perps-api
ENV PATH=/opt/perps-api/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PERPS_API_HOST=0.0.0.0 \
    PERPS_API_DATABASE=/var/lib/perps-api/perps_api.db
USER perps-api
WORKDIR /var/lib/perps-api
EXPOSE 8100
ENTRYPOINT ["python", "-m", "perps_api"]

FROM python:3.11-slim AS portcullis
# /var/lib/portcullis-chain: where docker-compose.yml's deploy job writes the chains file (a named volume
# mounted there takes this directory's owner).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/portcullis portcullis \
 && install -d -o portcullis -g portcullis /var/lib/portcullis-chain
COPY --from=build /opt/portcullis /opt/portcullis
ENV PATH=/opt/portcullis/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTCULLIS_HOST=0.0.0.0 \
    PORTCULLIS_PORT=8000 \
    PORTCULLIS_DATA_DIR=/var/lib/portcullis
USER portcullis
WORKDIR /var/lib/portcullis
EXPOSE 8000
# /health is process-only (docs/API.md); the slim image has no curl, its Python does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORTCULLIS_PORT', '8000') + '/health', timeout=2)"]
ENTRYPOINT ["portcullis"]
CMD ["serve"]
