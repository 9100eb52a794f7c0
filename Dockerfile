# The service image: `serve` by default; `receive` for the built-in receiver.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY app ./app
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev
USER node
ENTRYPOINT ["node", "dist/app/cli/main.js"]
CMD ["serve"]
