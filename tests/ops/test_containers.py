"""The container files, checked without a Docker engine: the Dockerfile's instructions and stages, and compose.yaml's
services, their commands, dependencies and health checks, and the variables they set (documented in the README)."""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                           "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "COMMENT"}


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=(ROOT / "Dockerfile").open("rb"))
    return parser


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def stages(dockerfile: DockerfileParser) -> list[list[dict]]:
    out: list[list[dict]] = []
    for instruction in dockerfile.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out and instruction["instruction"] != "COMMENT":
            out[-1].append(instruction)
    return out


def test_dockerfile_is_multi_stage_slim_and_unprivileged(dockerfile):
    assert {i["instruction"] for i in dockerfile.structure} <= DOCKERFILE_INSTRUCTIONS
    build, run = stages(dockerfile)
    assert build[0]["value"] == "python:3.11-slim AS build"
    assert run[0]["value"] == "python:3.11-slim"
    run_values = {i["instruction"]: i["value"] for i in run}
    assert run_values["USER"] not in {"root", "0"}
    assert "useradd" in run_values["RUN"] and run_values["USER"] in run_values["RUN"]
    assert run_values["EXPOSE"] == "8000"
    assert "COPY --from=build /venv /venv" in [f"COPY {i['value']}" for i in run]
    env = dict(dockerfile.envs)
    assert env["DJANGO_SETTINGS_MODULE"] == "openmeter_site.settings.production"
    assert env["HOST"] == "0.0.0.0"
    assert shlex.join(yaml.safe_load(run_values["CMD"])) == (
        "gunicorn openmeter_site.wsgi:application -c python:openmeter_site.gunicorn_conf")


def test_dockerfile_installs_the_lock_and_collects_static_files(dockerfile):
    build, _ = stages(dockerfile)
    runs = [i["value"] for i in build if i["instruction"] == "RUN"]
    assert "/venv/bin/pip install -r /tmp/requirements.lock" in runs
    assert any("manage.py collectstatic --noinput" in r for r in runs)
    for copy in (i["value"] for i in build if i["instruction"] == "COPY"):
        source = copy.split()[0]
        assert (ROOT / source).exists(), copy
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".data", "tests", "node_modules", ".env"} <= set(ignored)


def test_compose_runs_web_worker_beat_on_postgres_and_redis(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    app = {name: services[name] for name in ("migrate", "web", "worker", "beat")}
    for name, service in app.items():
        assert service["build"] == "." and service["image"] == "openmeter-django:latest", name
        assert service["environment"]["DATABASE_URL"].startswith("postgres://openmeter:openmeter@postgres:5432/")
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
    for name in ("web", "worker", "beat"):
        assert app[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert app["worker"]["command"][:4] == ["celery", "-A", "openmeter_site", "worker"]
    assert "-B" not in app["worker"]["command"]  # beat is a service of its own (one beat, any number of workers)
    assert app["beat"]["command"][:4] == ["celery", "-A", "openmeter_site", "beat"]
    assert "migrate --noinput" in app["migrate"]["command"][-1]
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]
    # every service has a health check; web's asks /readyz
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("postgres", "redis", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_compose_requires_a_secret_and_documents_every_variable(compose):
    environment = compose["services"]["web"]["environment"]
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")  # no default: compose refuses to start without it
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", readme, flags=re.MULTILINE))
    documented |= {name for row in re.findall(r"^\| (`[A-Z0-9_]+`(?: / `[A-Z0-9_]+`)+)", readme, flags=re.MULTILINE)
                   for name in re.findall(r"`([A-Z0-9_]+)`", row)}
    assert set(environment) - documented == set()
