# One image for the gateway, every service and the migrate job; compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The source tree (alembic.ini, migrations/) stays importable from /app, ahead of site-packages.
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN mkdir -p services gateway duijie_cli \
    && touch services/__init__.py gateway/__init__.py duijie_cli/__init__.py \
    && pip install . \
    && pip uninstall -y duijie \
    && rm -rf services gateway duijie_cli build *.egg-info

COPY alembic.ini ./
COPY migrations ./migrations
COPY services ./services
COPY gateway ./gateway
COPY duijie_cli ./duijie_cli
RUN pip install --no-deps . && rm -rf build *.egg-info

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin duijie
USER duijie

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]

# Every app listens on 8000 inside its container; APP picks which one (compose sets it per service).
ENV APP=gateway.app:create_app
CMD ["sh", "-c", "exec uvicorn --factory \"$APP\" --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips='*'"]
