# The WeConnect relay image: the relay (relay/dist) serving the built web app (web/dist), with production
# dependencies only, as an unprivileged user. Built from the repository root: docker build -t weconnect .

# 1. Build everything (dev dependencies, compilers for native modules).
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY crypto/package.json crypto/
COPY relay/package.json relay/
COPY web/package.json web/
RUN npm ci --no-audit --no-fund
COPY crypto crypto
COPY relay relay
COPY web web
RUN npm run build

# 2. Production dependencies of the relay alone (native modules compiled against the runtime's Node).
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY crypto/package.json crypto/
COPY relay/package.json relay/
COPY web/package.json web/
RUN npm ci --omit=dev --workspace relay --include-workspace-root=false --no-audit --no-fund

# 3. Runtime: no compilers, no sources, no dev dependencies.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules node_modules
COPY --chown=root:root package.json ./
COPY --chown=root:root relay/package.json relay/
COPY --from=build --chown=root:root /app/relay/dist relay/dist
COPY --from=build --chown=root:root /app/web/dist web/dist
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
# Readiness, not liveness: /api/ready answers 503 when the store (or Redis) does not answer within READY_TIMEOUT_MS.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/api/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "relay/dist/main.js"]
