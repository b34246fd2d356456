# The operator image: `istio-operator run`, as a non-root user.
#   docker build -t istio-operator:0.1.0 .

# helm and the chart catalogue of the istiod family, from Go modules (tools/).
FROM golang:1.26 AS charts
ENV GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    ISTIO_OPERATOR_CHARTS_DIR=/opt/istio-charts
COPY tools /tools
RUN cd /tools/helm && go build -trimpath -ldflags "-s -w" -o /opt/bin/helm helm.sh/helm/v3/cmd/helm \
 && bash /tools/build-istio-charts.sh

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Runtime dependencies first, exactly as locked (no test or lint tool: tools/lock/), so
# that source changes reuse this layer.
COPY requirements-runtime.lock ./
RUN pip install --require-hashes --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install --no-deps /wheels/*.whl

FROM python:3.11-slim
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin operator
COPY --from=builder /opt/venv /opt/venv
COPY --from=charts /opt/bin/helm /usr/local/bin/helm
COPY --from=charts /opt/istio-charts /opt/istio-charts
ENV PATH=/opt/venv/bin:$PATH \
    HELM=/usr/local/bin/helm \
    ISTIO_OPERATOR_CHARTS_DIR=/opt/istio-charts \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["istio-operator", "run"]
