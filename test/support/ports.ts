/** Ports for tests: never fixed, always found by binding port 0. */
import { createServer } from 'node:net';

/** A TCP port nothing listens on: bound on port 0, then closed. */
export async function closedTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
