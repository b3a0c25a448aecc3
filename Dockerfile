# mockserver as a container image: `docker build -t mockserver .`
# Serves the shipped demo scenarios unless given --scenarios (mount a folder at /scenarios).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mockserver ./mockserver
# The redis extra: replicas share their state with --state redis://HOST:PORT/DB.
RUN pip install '.[redis]' && rm -rf /src

RUN useradd --system --no-create-home mock
USER mock
WORKDIR /scenarios
EXPOSE 8000

# The admin endpoints (/_mock/) are off beyond loopback unless MOCKSERVER_ADMIN_TOKEN is set.
ENTRYPOINT ["mockserver"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
