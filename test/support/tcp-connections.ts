/**
 * Established TCP connections on this host, and cutting one of them, with
 * iproute2's `ss` (cutting needs root, as the test bed does). Used to kill a
 * tap's connection from the network's side, the way a firewall or a crashed
 * peer would, without a hook in the service.
 */
import { execFileSync } from 'node:child_process';

export interface TcpConnection {
  local: string;
  peer: string;
  bytesReceived: number;
}

/** Established connections matching an `ss` filter expression, e.g. `sport = :4000`. */
export function establishedTcp(filter: string): TcpConnection[] {
  const out = execFileSync('ss', ['-H', '-t', '-n', '-i', 'state', 'established', `( ${filter} )`], { encoding: 'utf8' });
  const connections: TcpConnection[] = [];
  for (const line of out.split('\n')) {
    const endpoints = /^\s*\d+\s+\d+\s+(\S+)\s+(\S+)/.exec(line);
    if (endpoints) {
      connections.push({ local: endpoints[1]!, peer: endpoints[2]!, bytesReceived: 0 });
      continue;
    }
    const received = /bytes_received:(\d+)/.exec(line);
    if (received && connections.length > 0) connections.at(-1)!.bytesReceived = Number(received[1]);
  }
  return connections;
}

/** Resets one connection (both ends see it die), as seen from its local end. */
export function resetTcp(connection: TcpConnection): void {
  const port = (address: string) => address.slice(address.lastIndexOf(':') + 1);
  execFileSync('ss', ['-K', '-t', 'state', 'established', `( sport = :${port(connection.local)} and dport = :${port(connection.peer)} )`]);
  const left = establishedTcp(`sport = :${port(connection.local)} and dport = :${port(connection.peer)}`);
  if (left.length > 0) throw new Error(`ss -K did not cut ${connection.local} → ${connection.peer}`);
}
