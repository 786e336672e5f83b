# syntax=docker/dockerfile:1

# The build stage runs on the build host's platform and cross-compiles, so a multi-arch
# image does not build under emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

# Modules change far less often than the sources: keeping them in their own layer lets a
# source-only change reuse it.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILD_DATE}" -o /out/webhook ./cmd/webhook

# Static binary, no shell and no package manager: nothing in the image but the webhook and
# CA certificates. The nonroot tag runs as 65532, which the chart's securityContext expects.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="pdguard" \
      org.opencontainers.image.description="Admission webhook guarding PingDirectory StatefulSet upgrades" \
      org.opencontainers.image.source="https://github.com/pdguard/pdguard" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/webhook"]
CMD ["serve"]
