# auth-service image: gRPC on 50051, Connect/gRPC-Web on 8080, admin (metrics, probes) on 9090,
# data (embedded database and the generated signing key) in the /data volume.
#
#   docker build -t auth-service .
#   docker run -p 50051:50051 -p 8080:8080 -p 9090:9090 -v auth-data:/data auth-service
#
# Read-only root filesystem friendly: at run time nothing is written outside /data (the
# process starts with node, not npm), so `docker run --read-only -v auth-data:/data …` and
# Kubernetes' readOnlyRootFilesystem work; with PostgreSQL and a mounted key, /data may be
# an empty tmpfs.
#
# COPY lists are explicit (there is no .dockerignore): node_modules/, data/ and dist/ of the
# build context never reach the image.

# ---- build: compile TypeScript to dist/ ----
FROM node:24-slim AS build
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci

COPY tsconfig.json ./
COPY src ./src
COPY gen ./gen
# tsc, then gen/descriptor-set.binpb (read by server reflection) into dist/gen/.
RUN npm run build

# ---- runtime: production dependencies and dist/ only ----
FROM node:24-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production DATA_DIR=/data

COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY --from=build /app/dist ./dist

# Created and chowned before VOLUME, so a new named volume starts out owned by node.
RUN mkdir -p /data && chown node:node /data
VOLUME /data

USER node
EXPOSE 50051 8080 9090
# The project's own probe: grpc.health.v1.Health/Check on 127.0.0.1:$PORT, SERVING → exit 0.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
# node handles SIGTERM itself (graceful shutdown, bounded by SHUTDOWN_TIMEOUT).
CMD ["node", "dist/src/main.js", "serve"]
