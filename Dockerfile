# The one image for web, worker, beat and migrations (see k8s/). Built by the site's CI;
# this machine has no Docker engine, so it is not built here.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=portal.settings

RUN groupadd --gid 10001 karimasu && useradd --uid 10001 --gid 10001 --no-create-home karimasu
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY portal ./portal
COPY scheduler ./scheduler
COPY querygate ./querygate
COPY nodeagent ./nodeagent
COPY kube_emulator ./kube_emulator
COPY demo ./demo
RUN pip install -c requirements.lock .
# The scheduling core's hot modules compiled with mypyc (scripts/build_core.py; docs/
# scheduler.md, "Cycle cost"), next to both copies of their sources: /app's (what runs from
# /app: uvicorn, manage.py) and the installed package's (what a console script started
# elsewhere imports). The compiler and mypy leave the image again; the build fails if
# either copy would not run compiled.
COPY scripts/build_core.py ./scripts/
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install "$(grep '^mypy==' requirements.lock)" \
    && python scripts/build_core.py \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && python scripts/build_core.py --core "$site/scheduler/core" --into "$site/scheduler/core/_compiled" \
    && python -c 'import scheduler.core as c; assert c.COMPILED, "core not compiled"' \
    && (cd / && python -c 'import scheduler.core as c; assert c.COMPILED, "core not compiled"') \
    && pip uninstall -y mypy \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

COPY manage.py ./
COPY frontend ./frontend
COPY locale ./locale
# collectstatic needs settings that load; a throwaway random key for this build step only
# (settings refuse published example keys when DEBUG is off).
RUN DEBUG=false SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    ALLOWED_HOSTS=build STATIC_ROOT=/app/static \
    python manage.py collectstatic --noinput -v0
# Mutable state: the query results (k8s mounts the shared results volume here) and
# KARIMASU_VAR_DIR; the root filesystem is read-only in k8s/.
RUN mkdir -p /var/lib/karimasu/query-results && chown -R 10001:10001 /var/lib/karimasu
ENV KARIMASU_VAR_DIR=/var/lib/karimasu QUERYGATE_RESULTS_DIR=/var/lib/karimasu/query-results

USER 10001:10001
EXPOSE 8000
CMD ["uvicorn", "portal.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--workers", "3"]
