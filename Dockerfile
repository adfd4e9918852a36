# syntax=docker/dockerfile:1
#
# The issuer as a small, non-root image.
#   docker build -t issuer .
#   docker run --rm issuer keys new-kek
# Operating it: deploy/README.md. Pin both FROM lines by digest for reproducible builds.

# --- builder: build the wheel and install it with its dependencies into /opt/venv ---------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY issuer ./issuer
COPY keys ./keys

# The same steps as tests/test_deploy.py: build a wheel, install it into a fresh venv.
# pip and setuptools are removed from the venv afterwards: the runtime never installs anything.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install /wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime ----------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 issuer \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/issuer --no-create-home \
      --shell /usr/sbin/nologin issuer \
 && install --directory --owner=10001 --group=10001 --mode=0700 /var/lib/issuer

# The venv must keep its path: its scripts and pyvenv.cfg point at /opt/venv and at the
# base image's /usr/local/bin/python3.11, identical in both stages.
COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ISSUER_DATA_DIR=/var/lib/issuer

WORKDIR /var/lib/issuer
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000
STOPSIGNAL SIGTERM

# Liveness only (the process answers HTTP). Readiness, which includes the database, is /readyz.
# slim has no curl: the stdlib does the request; a non-2xx answer raises, so exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

ENTRYPOINT ["issuer"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
