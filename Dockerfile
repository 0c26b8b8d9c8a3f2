# syntax=docker/dockerfile:1
# pgferry container image: `docker build -t pgferry .` (README "Deployment").
#
# Node 26 is the active LTS line; its Debian default is trixie (Debian 13). Every dependency's
# `engines` accepts it. test/integration/image.test.ts replays this file's runtime stage outside
# Docker (same COPY lines, same `npm ci`), so keep the two in step.

# ── build: compile TypeScript to dist/ with the dev dependencies ──────────────────────────────────
FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the compiler needs none, and no native module is built.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ── runtime: production dependencies, the compiled output and the example configs ──────────────
FROM node:26-trixie-slim AS runtime
# tini runs as PID 1: it forwards SIGTERM/SIGINT to node (pgferry drains on the first, exits at once
# on the second) and reaps zombies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
# V8's young generation at 2 MB semi-spaces (src/cli/heapPolicy.ts says why; keep the two equal).
ENV NODE_OPTIONS=--max-semi-space-size=2
# glibc returns blocks of 128 KiB and more to the system when freed (src/cli/heapPolicy.ts, RUNTIME_ENV).
ENV MALLOC_MMAP_THRESHOLD_=131072
# What the HEALTHCHECK asks; change it together with control.listen's port.
ENV PGFERRY_HEALTHCHECK_URL=http://127.0.0.1:9187/healthz
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && rm -rf /root/.npm
COPY --from=build /app/dist ./dist
COPY config ./config

# The image's `node` user (uid 1000), by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# The control server: /healthz, /readyz, /metrics, /v1/status. pgferry listens on 127.0.0.1 unless
# control.listen says otherwise; to be scraped from outside the container, listen on 0.0.0.0:9187,
# which pgferry allows only with control.adminToken set.
EXPOSE 9187
# Liveness only (the process answers); readiness (/readyz) is for orchestrators. Node's own fetch:
# slim images have no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch(process.env.PGFERRY_HEALTHCHECK_URL,{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Mount the config at /etc/pgferry/pgferry.yaml; secrets come from the environment through its
# ${VAR} references (SOURCE_URL, TARGET_URL, PGFERRY_ADMIN_TOKEN, ...).
ENTRYPOINT ["tini", "--", "node", "/app/dist/cli/bin.js"]
CMD ["run", "--config", "/etc/pgferry/pgferry.yaml"]
