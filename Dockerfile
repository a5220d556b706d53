# syntax=docker/dockerfile:1
# The product as a container image: gunicorn by default; the same image runs the Celery worker and beat
# (compose.yaml). Build: docker build -t openmeter-django .

# --- build: the pinned dependencies in a virtualenv, the static files collected --------------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /venv
COPY requirements.lock /tmp/requirements.lock
RUN /venv/bin/pip install -r /tmp/requirements.lock
WORKDIR /app
COPY . .
# collectstatic reads no secret and no database; the build-time key is never used at run time.
RUN SECRET_KEY=collectstatic-only STATIC_ROOT=/app/staticfiles /venv/bin/python manage.py collectstatic --noinput -v 0

# --- run: slim, unprivileged ---------------------------------------------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --home-dir /app openmeter
COPY --from=build /venv /venv
COPY --from=build --chown=root:root /app /app
WORKDIR /app
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=openmeter_site.settings.production \
    STATIC_ROOT=/app/staticfiles \
    HOST=0.0.0.0 \
    PORT=8000 \
    OPENMETER_DATA_DIR=/tmp/openmeter
USER openmeter
EXPOSE 8000
CMD ["gunicorn", "openmeter_site.wsgi:application", "-c", "python:openmeter_site.gunicorn_conf"]
