# One image for every node process (web, worker); the compose file wires two nodes together.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
        mariadb-client openssh-server openssh-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
COPY config ./config
COPY appliance ./appliance
COPY wizard ./wizard
COPY migrations_engine ./migrations_engine
RUN pip install --no-cache-dir .
COPY . .
ENV DJANGO_SETTINGS_MODULE=config.settings PYTHONUNBUFFERED=1
EXPOSE 443 80 22
