# One image for hpo's GPU workers and its dashboard.
# Build: docker build -t hpo .   (docker compose builds it for you)
FROM python:3.11-slim

# git: provenance records the study's commit; procps: ps for debugging a fleet.
RUN apt-get update && apt-get install -y --no-install-recommends git procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/hpo
# torch first and on its own layer: it is the big one, and PyPI's default build has CUDA.
RUN pip install --no-cache-dir "torch>=2.1,<3"
COPY pyproject.toml README.md ./
COPY hpo ./hpo
RUN pip install --no-cache-dir .

WORKDIR /work
ENTRYPOINT ["hpo"]
