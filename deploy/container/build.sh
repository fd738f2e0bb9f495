#!/usr/bin/env bash
# Build the rtcomm-harness container image with podman or docker, whichever works here.
#   IMAGE=rtcomm-harness:dev VERSION=... deploy/container/build.sh
# The context is a temporary directory holding only the static binary and the CA bundle.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-rtcomm-harness:dev}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
GO=${GO:-go}

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then
    engine=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  else
    echo "make image: neither podman nor a running docker daemon was found." >&2
    echo "  Debian/Ubuntu: sudo apt-get install podman   (or docker.io)" >&2
    exit 3
  fi
fi
ca=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$ca" ]; then
  echo "make image: $ca not found (Debian: apt-get install ca-certificates): the image needs it for ssl:// and wss:// brokers" >&2
  exit 3
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$ctx/rtcomm-harness" ./cmd/rtcomm-harness
cp "$ca" "$ctx/ca-certificates.crt"
"$engine" build -f deploy/container/Containerfile -t "$IMAGE" "$ctx"
echo "image: $IMAGE ($engine)"
