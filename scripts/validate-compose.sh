#!/usr/bin/env bash
# Validates docker-compose.yml offline (no Docker engine needed): docker-compose v1 parses and interpolates it with
# the placeholder secrets of .env.example, and dclint checks it against the current Compose spec.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v docker-compose >/dev/null 2>&1; then
  docker-compose --env-file .env.example -f docker-compose.yml config -q
  echo "docker-compose config: ok"
else
  echo "docker-compose is not installed (Debian package docker-compose): skipping its check" >&2
fi
npx --no-install dclint docker-compose.yml
echo "dclint: ok"
