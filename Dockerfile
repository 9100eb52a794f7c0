# The service image: `serve` by default (`receive` runs the built-in receiver).
#   docker build -t asterisk-transcription-proxy .
#   docker run -d --network=host -v /path/config.ini:/etc/config.ini asterisk-transcription-proxy
# Configuration: /etc/config.ini when mounted (the working directory's
# config.ini is a link to it), then the environment, then --set flags; see
# docs/deployment.md. Runs as user node (1000); SIGTERM drains the calls in
# progress (DRAIN_TIMEOUT_MS) before exiting: give `docker stop` a longer -t.

# Build: compile TypeScript with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY app ./app
RUN npm run build

# Production dependencies only, without npm's cache.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && rm -rf /root/.npm

FROM node:20-bookworm-slim
LABEL org.opencontainers.image.title="asterisk-transcription-proxy" \
      org.opencontainers.image.description="Real-time call transcription for Asterisk and FreePBX" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production
# jemalloc, which gives the memory of ended calls back to the system within
# seconds (docs/deployment.md, "Memory"); the same settings as the systemd unit.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD=libjemalloc.so.2 \
    MALLOC_CONF=background_thread:true,narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache:false
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist/app ./dist/app
# ./config.ini -> /etc/config.ini, the path the Voicegain proxy's image read,
# so its `docker run -v .../config.ini:/etc/config.ini` line works unchanged.
RUN chmod 0755 dist/app/cli/main.js \
 && ln -s /app/dist/app/cli/main.js /usr/local/bin/transcription-proxy \
 && ln -s /etc/config.ini /app/config.ini
USER node
# SIGTERM starts the drain; a second one ends it at once.
STOPSIGNAL SIGTERM
# Healthy while /ready of the ops endpoint (OPS_LISTEN) answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=40s --retries=3 CMD ["node", "dist/app/cli/healthcheck.js"]
# main.js itself, not `node main.js`: its first line carries node's flags for the service.
ENTRYPOINT ["/app/dist/app/cli/main.js"]
CMD ["serve"]
