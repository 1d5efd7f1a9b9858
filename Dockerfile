# syntax=docker/dockerfile:1
# The fairshift operator image.
#   builder: wheels of fairshift, of fairshift-instrument (./instrument) and of every dependency
#            (pip wheel), installed into a virtual environment from those wheels only
#            (pip install --no-index);
#   final:   python:3.11-slim with that virtual environment and nothing else: no compilers, no
#            pip in the environment, running as the unprivileged user 10001.
# The install steps live in docker/install.sh; docker/test_install.sh runs the same steps in a
# fresh virtual environment, and docker/lint.sh lints this file with hadolint.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY docker/install.sh /usr/local/bin/fairshift-install
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
COPY instrument/ ./instrument/
RUN fairshift-install wheels /src /wheels \
 && fairshift-install venv /wheels /opt/fairshift

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="fairshift" \
      org.opencontainers.image.description="Kubernetes operator for progressive delivery of ML models gated on per-slice fairness" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/fairshift/fairshift"
RUN groupadd --system --gid 10001 fairshift \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin fairshift
COPY --from=builder /opt/fairshift /opt/fairshift
ENV PATH=/opt/fairshift/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /tmp
USER 10001
EXPOSE 8080 9090
ENTRYPOINT ["fairshift"]
CMD ["run", "--all-namespaces"]
