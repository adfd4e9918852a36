"""Deployment artefacts: the image's install steps work, and the manifests say what they must.

No Docker daemon or cluster is needed: the Dockerfile's build is replayed in a fresh virtual
environment, the YAML is checked for its essentials, and the Kubernetes manifests are
validated against the API schemas that ``kubernetes-validate`` ships (offline).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from issuer.settings import Settings
from issuer.startup import check_production
from keys.envelope import new_kek

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OLDEST_KUBERNETES = "1.29"
SETTINGS = {f"ISSUER_{name.upper()}" for name in Settings.model_fields}


# -- helpers ---------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(FROM arguments, instructions of that stage) for every build stage."""
    found: list[tuple[str, list[tuple[str, str]]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append((args, []))
        elif found:
            found[-1][1].append((keyword, args))
    return found


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def ignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule, closely enough: the last matching pattern wins; a pattern that matches a
    parent folder matches everything in it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            result = not negated
    return result


def build_context(target: Path) -> None:
    """Reproduce what the builder stage's COPY instructions put in its WORKDIR."""
    patterns = dockerignore_patterns()
    builder = next(body for head, body in stages(DOCKERFILE.read_text()) if head.lower().endswith(" as builder"))
    copies = [exec_form(args) for keyword, args in builder if keyword == "COPY" and not args.startswith("--")]
    assert copies, "the builder stage copies nothing"
    for words in copies:
        *sources, dest = words
        dest_dir = target / dest
        for source in sources:
            for match in sorted(ROOT.glob(source)):
                relative = match.relative_to(ROOT).as_posix()
                if ignored(relative, patterns):
                    continue
                if match.is_dir():
                    for file in sorted(match.rglob("*")):
                        inner = file.relative_to(ROOT).as_posix()
                        if file.is_file() and not ignored(inner, patterns):
                            out = dest_dir / file.relative_to(match)
                            out.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(file, out)
                else:
                    out = dest_dir / match.name if dest.endswith("/") or len(sources) > 1 else dest_dir
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, out)


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s(kind: str, filename: str) -> dict[str, Any]:
    docs = [d for d in yaml_documents(K8S / filename) if d.get("kind") == kind]
    assert len(docs) == 1, f"{filename} should hold exactly one {kind}"
    doc: dict[str, Any] = docs[0]
    return doc


def pod_labels(manifest: dict[str, Any]) -> dict[str, str]:
    return dict(manifest["spec"]["template"]["metadata"]["labels"])


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISSUER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- (a) the image's install steps, replayed ------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_installs_into_a_clean_venv_and_the_cli_runs(tmp_path: Path) -> None:
    context, wheels, venv, work = (tmp_path / d for d in ("context", "wheels", "venv", "work"))
    work.mkdir()
    build_context(context)
    env = clean_env()

    # The builder stage's RUN: wheel, fresh venv, install, drop pip and setuptools.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", wheels, "."], cwd=context, env=env)
    (wheel,) = wheels.glob("issuer-*.whl")
    run([sys.executable, "-m", "venv", venv], cwd=work, env=env)
    run([venv / "bin" / "pip", "install", wheel], cwd=work, env=env)
    run([venv / "bin" / "pip", "uninstall", "--yes", "pip", "setuptools"], cwd=work, env=env)

    issuer = venv / "bin" / "issuer"
    assert "serve" in run([issuer, "--help"], cwd=work, env=env)
    table = run([issuer, "config-table"], cwd=work, env=env)
    assert table.startswith("| Variable |")
    assert "`ISSUER_KEY_ENCRYPTION_KEYS`" in table
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\n", run([issuer, "keys", "new-kek"], cwd=work, env=env))
    # The SQL migrations are package data: this fails if the wheel left them out.
    migrated = run([issuer, "migrate"], cwd=work, env=clean_env(ISSUER_DATA_DIR=str(work / "data")))
    assert "up to date" in migrated
    assert (work / "data" / "issuer.sqlite3").exists()
    # /docs serves files of the wheel (our initializer) and of the swagger-ui-py dependency.
    docs = "from issuer.http.swagger import ASSETS; print(all(p.is_file() for p, _ in ASSETS.values()))"
    assert run([venv / "bin" / "python", "-c", docs], cwd=work, env=env).strip() == "True"
    # The hosted pages' templates and static files are package data too.
    pages = (
        "from importlib import resources; d = resources.files('issuer.pages'); "
        "print(sorted(p.name for p in (d / 'templates').iterdir()), sorted(p.name for p in (d / 'static').iterdir()))"
    )
    listed = run([venv / "bin" / "python", "-c", pages], cwd=work, env=env)
    assert "'login.html'" in listed and "'consent.html'" in listed and "'pages.css'" in listed, listed


# -- (b) the YAML says what it must -------------------------------------------------------


def all_yaml() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_every_yaml_file_under_deploy_parses() -> None:
    assert all_yaml(), "no YAML under deploy/"
    for path in all_yaml():
        assert yaml_documents(path), f"{path} is empty"


def test_compose_runs_migrate_first_and_checks_health() -> None:
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"issuer", "migrate", "postgres", "redis"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    depends = services["issuer"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    for name in ("issuer", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert "curl" not in " ".join(services["issuer"]["healthcheck"]["test"])
    assert services["issuer"]["image"] == services["migrate"]["image"]
    assert services["issuer"]["env_file"] == services["migrate"]["env_file"]
    # The KEK goes to the issuer containers only, never to PostgreSQL or Redis.
    for name in ("postgres", "redis"):
        assert "env_file" not in services[name]


def test_env_example_is_valid_production_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    example = env_file(DEPLOY / "issuer.env.example")
    assert set(example) - {"POSTGRES_PASSWORD"} <= SETTINGS, "unknown settings in issuer.env.example"
    assert "keys new-kek" in (DEPLOY / "issuer.env.example").read_text()
    for name, value in example.items():
        monkeypatch.setenv(name, value)
    # What compose.yaml adds, and a real key in place of the placeholder.
    monkeypatch.setenv("ISSUER_DATABASE_URL", "postgresql://issuer:secret@postgres:5432/issuer")
    monkeypatch.setenv("ISSUER_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("ISSUER_KEY_ENCRYPTION_KEYS", new_kek())
    settings = Settings(_env_file=None)
    assert settings.env == "production"
    check_production(settings)


def test_k8s_settings_are_real_settings() -> None:
    config = k8s("ConfigMap", "configmap.yaml")["data"]
    secret = k8s("Secret", "secret.example.yaml")["stringData"]
    assert set(config) <= SETTINGS, set(config) - SETTINGS
    assert set(secret) == {"ISSUER_KEY_ENCRYPTION_KEYS", "ISSUER_DATABASE_URL"}
    assert config["ISSUER_ENV"] == "production"
    assert config["ISSUER_URL"].startswith("https://")


HTTP_LIMITS = (
    "ISSUER_MAX_HEADER_BYTES",
    "ISSUER_HEADER_TIMEOUT",
    "ISSUER_BODY_TIMEOUT",
    "ISSUER_KEEP_ALIVE_TIMEOUT",
    "ISSUER_MAX_CONNECTIONS",
    "ISSUER_MAX_BODY_BYTES",
)


def test_compose_and_kubernetes_set_the_same_http_limits() -> None:
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    environment = compose["services"]["issuer"]["environment"]
    config = k8s("ConfigMap", "configmap.yaml")["data"]
    for name in HTTP_LIMITS:
        # compose: ${NAME:-default}, overridable from .env
        match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", str(environment[name]))
        assert match and match.group(1) == name, (name, environment[name])
        assert match.group(2) == config[name], name
        Settings(_env_file=None, **{name.removeprefix("ISSUER_").lower(): config[name]})
    assert "ISSUER_FORWARDED_ALLOW_IPS" in config and "ISSUER_TRUST_FORWARDED_FOR" not in config


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def assert_hardened(manifest: dict[str, Any]) -> None:
    pod = manifest["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    box = container(manifest)["securityContext"]
    assert box["readOnlyRootFilesystem"] is True
    assert box["allowPrivilegeEscalation"] is False
    assert box["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(manifest)["volumeMounts"]}
    for path in ("/tmp", "/var/lib/issuer"):
        assert path in mounts, f"{path} is not writable under a read-only root"
        assert "emptyDir" in volumes[mounts[path]]
    names = {ref.get("configMapRef", ref.get("secretRef", {}))["name"] for ref in container(manifest)["envFrom"]}
    assert names == {"issuer-config", "issuer-secrets"}


def test_deployment_probes_drain_and_hardening() -> None:
    deployment = k8s("Deployment", "deployment.yaml")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()
    box = container(deployment)
    assert box["args"][0] == "serve"
    ports = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert ports == {"http": 8000}
    assert box["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert box["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert box[probe]["httpGet"]["port"] in ports
    assert {"cpu", "memory"} <= set(box["resources"]["requests"])
    assert "memory" in box["resources"]["limits"]
    sleep = box["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    # preStop sleep + uvicorn's 20 s graceful shutdown must fit in the grace period.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= int(sleep[1]) + 20
    assert_hardened(deployment)


def test_migrate_job_runs_migrate_as_the_same_non_root_image() -> None:
    job = k8s("Job", "migrate-job.yaml")
    box = container(job)
    assert box["args"] == ["migrate"]
    assert box["image"] == container(k8s("Deployment", "deployment.yaml"))["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert_hardened(job)
    # Job pods must not receive Service traffic nor count towards the PDB.
    deployment = k8s("Deployment", "deployment.yaml")
    assert not deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels(job).items()


def test_service_pdb_and_hpa_target_the_deployment() -> None:
    deployment = k8s("Deployment", "deployment.yaml")
    labels = pod_labels(deployment)
    service = k8s("Service", "service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    pdb = k8s("PodDisruptionBudget", "pdb.yaml")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    hpa = k8s("HorizontalPodAutoscaler", "hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    # Utilisation is relative to the request: without one the HPA cannot act.
    assert "cpu" in container(deployment)["resources"]["requests"]


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}
    assert "namespace" not in kustomization
    for path in K8S.glob("*.yaml"):
        for doc in yaml_documents(path):
            assert "namespace" not in doc.get("metadata", {}), f"{path.name} pins a namespace"


def test_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; `kubectl kustomize deploy/k8s` not checked")
    out = run([kubectl, "kustomize", K8S], cwd=ROOT, env=clean_env(), timeout=60)
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(out) if doc)
    expected = ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "PodDisruptionBudget", "Service"]
    assert kinds == sorted(expected)


# -- (c) Kubernetes API schemas ------------------------------------------------------------


def test_k8s_manifests_match_the_kubernetes_api_schemas() -> None:
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (pip install kubernetes-validate); schemas not checked",
    )
    versions = (OLDEST_KUBERNETES, kv.latest_version())
    checked = 0
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_documents(path):
            if doc["apiVersion"].startswith("kustomize.config.k8s.io/"):
                continue
            for version in versions:
                try:
                    kv.validate(doc, version, strict=True)
                except kv.ValidationError as exc:
                    where = "/".join(str(p) for p in exc.path)
                    pytest.fail(f"{path.name} ({doc['kind']}) against Kubernetes {version}: {where}: {exc.message}")
            checked += 1
    assert checked == 7


# -- (d) the Dockerfile -------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_health_checked() -> None:
    text = DOCKERFILE.read_text()
    found = stages(text)
    assert len(found) >= 2, "not a multi-stage build"
    assert found[0][0].lower().endswith(" as builder")
    final_from, final = found[-1]
    assert final_from.split()[0] == "python:3.11-slim"
    final_dict: dict[str, list[str]] = {}
    for keyword, args in final:
        final_dict.setdefault(keyword, []).append(args)

    assert any(a.startswith("--from=builder") and "/opt/venv" in a for a in final_dict.get("COPY", []))
    assert all(not a.startswith("--from") for _, body in found[:1] for k, a in body if k == "COPY")

    users = final_dict.get("USER", [])
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "10001"

    (healthcheck,) = final_dict["HEALTHCHECK"]
    assert "CMD" in healthcheck and "/healthz" in healthcheck and "urllib" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck

    assert final_dict["EXPOSE"] == ["8000"]
    assert exec_form(final_dict["ENTRYPOINT"][-1]) == ["issuer"]
    assert exec_form(final_dict["CMD"][-1]) == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert any("ISSUER_DATA_DIR=/var/lib/issuer" in a for a in final_dict.get("ENV", []))
    assert any("--owner=10001" in a and "/var/lib/issuer" in a for a in final_dict.get("RUN", []))


def test_dockerignore_keeps_secrets_and_debris_out_but_the_sources_in() -> None:
    patterns = dockerignore_patterns()
    for path in ("deploy/.env", "deploy/issuer.env.example", ".git/config", ".env", "tests/conftest.py",
                 "issuer/__pycache__/app.cpython-311.pyc", "issuer.egg-info/PKG-INFO"):
        assert ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "README.md", "issuer/app.py", "keys/lifecycle.py",
                 "issuer/storage/migrations/postgres/0001_init.sql"):
        assert not ignored(path, patterns), f"{path} is needed by the image but ignored"
