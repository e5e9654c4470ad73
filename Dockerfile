# Ferry: one image for every process (`ferry ledger serve`, `ferry relayer run`,
# `ferry validator run`, `ferry api serve`, `ferry keys create`). The command picks the process;
# the config comes from FERRY_CONFIG (a mounted TOML file) and FERRY_* environment overrides.
#   docker build -t ferry:0.1.0 .
#   docker run --rm -v $PWD/ferry.toml:/etc/ferry/ferry.toml:ro ferry:0.1.0 ledger serve
# See deploy/README.md (Docker Compose and Helm).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FERRY_CONFIG=/etc/ferry/ferry.toml

WORKDIR /src
# Only what the wheel needs (pyproject.toml's packages and package data); see .dockerignore.
COPY pyproject.toml README.md ./
COPY adapters ./adapters
COPY api ./api
COPY contracts/__init__.py ./contracts/__init__.py
COPY contracts/artifacts ./contracts/artifacts
COPY contracts/src ./contracts/src
COPY htlc ./htlc
COPY ledger ./ledger
COPY relayer ./relayer
COPY validators ./validators
RUN pip install ".[postgres]" && rm -rf /src

# Non-root: uid/gid 10001 owns only the state directory (validator cursors, SQLite files).
RUN groupadd --system --gid 10001 ferry \
    && useradd --system --uid 10001 --gid ferry --home-dir /var/lib/ferry --shell /usr/sbin/nologin ferry \
    && mkdir -p /var/lib/ferry /etc/ferry/keys \
    && chown ferry:ferry /var/lib/ferry /etc/ferry/keys
USER 10001:10001
WORKDIR /var/lib/ferry

# ledger 8600, relayer inbox 8700 and metrics 9700, API 8800 (the config defaults).
EXPOSE 8600 8700 8800 9700
ENTRYPOINT ["ferry"]
CMD ["--help"]
