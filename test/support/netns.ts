/**
 * Several "hosts" on one machine for end-to-end tests: a lab is a set of
 * network namespaces, each with one veth interface on a private bridge, plus
 * one veth in the test process's own namespace, all with addresses from a
 * documentation range (198.51.100.0/24 by default), so a process in any host
 * reaches every other host and the test process itself, and nothing else.
 *
 *   host (test process) 198.51.100.1 ──┐
 *   netns atp-PID-edge  198.51.100.10 ─┼── bridge (in netns atp-PID-sw)
 *   netns atp-PID-cell1 198.51.100.11 ─┘
 *
 * Every process a test starts in a lab host goes through `host.spawn`, and
 * `lab.destroy()` kills whatever still runs in the lab's namespaces (found by
 * namespace, so children a process forked are found too), deletes the host
 * veth and the namespaces (the bridge and the other veths go with them), and
 * runs the clean-ups registered with `lab.onDestroy`. It is idempotent; call
 * it from `afterAll` so a failing test cleans up too. A lab left behind by a
 * test process that was itself killed is removed by the next `createLab`
 * (names carry the owner's pid). Needs root and iproute2.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';

export interface LabOptions {
  /** First three octets of the /24 the lab uses; the test process is .1. Default 198.51.100. */
  subnet?: string;
}

export interface LabHost {
  /** Short name given to addHost, e.g. "cell1". */
  name: string;
  /** The network namespace (`ip netns exec NETNS ...`). */
  netns: string;
  /** The host's address on the lab network. */
  address: string;
  /** The lab network, e.g. 198.51.100.0/24. */
  subnet: string;
  /**
   * A UDP/TCP port nobody else in this host uses: each call returns a new one
   * (from 40000 up, in steps of 4 so a media port has RTP and RTCP above it).
   * Inside a namespace of its own a test may pick ports; only the test binds there.
   */
  port(): number;
  /** Starts `command` inside the namespace; the lab kills it on destroy if it still runs. */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** Runs a command inside the namespace to completion and returns its stdout. */
  run(command: string, args: string[], timeoutMs?: number): string;
  /** The lab's onDestroy. */
  onDestroy(cleanup: () => void): void;
}

export interface Lab {
  /** The test process's own address on the lab network (listen here for servers every host must reach). */
  hostAddress: string;
  /** The lab network, e.g. 198.51.100.0/24. */
  subnet: string;
  hosts: LabHost[];
  /** Adds a namespace with address SUBNET.lastOctet (2..254). */
  addHost(name: string, lastOctet: number): LabHost;
  /** Registers a clean-up to run on destroy, after the processes are gone (last registered runs first). */
  onDestroy(cleanup: () => void): void;
  /** Removes everything the lab made; safe to call twice. */
  destroy(): Promise<void>;
  /** What is still there after destroy (namespaces, links, processes, mounts): empty when the lab is gone. */
  leftovers(): string[];
}

const PREFIX = 'atp-';
let labCount = 0;

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The process exists and is not a zombie (killed, waiting to be reaped). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

function namespaces(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.length > 0);
}

function pidsIn(netns: string): number[] {
  try {
    return ip(['netns', 'pids', netns])
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Kills every process of these namespaces (SIGKILL) and waits until they are gone. */
async function killAllIn(netnsNames: string[]): Promise<void> {
  const deadline = Date.now() + 5000;
  const seen = new Set<number>();
  for (;;) {
    for (const pid of netnsNames.flatMap(pidsIn)) seen.add(pid);
    const pids = [...seen].filter(alive);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (Date.now() > deadline) throw new Error(`processes ${pids.join(' ')} survived SIGKILL in ${netnsNames.join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function hostLinks(): string[] {
  return ip(['-o', 'link', 'show'])
    .split('\n')
    .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '')
    .filter((name) => name.length > 0);
}

/** Removes labs whose owning test process no longer runs (it was killed before its clean-up). */
async function sweepStaleLabs(): Promise<void> {
  const stale = namespaces().filter((name) => {
    const owner = /^atp-(\d+)-/.exec(name)?.[1];
    return owner !== undefined && !alive(Number(owner));
  });
  await killAllIn(stale);
  for (const name of stale) ip(['netns', 'delete', name]);
  const staleLink = (link: string): boolean => {
    const owner = /^atp(\d+)x\d+$/.exec(link)?.[1];
    return owner !== undefined && !alive(Number(owner));
  };
  for (const link of hostLinks().filter(staleLink)) {
    try {
      ip(['link', 'delete', link]);
    } catch {
      // gone with its namespace meanwhile
    }
  }
  await linksGone(staleLink);
}

/** Waits until no host link satisfies `match` (a deleted namespace's devices vanish asynchronously). */
async function linksGone(match: (link: string) => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (hostLinks().some(match) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Network namespace inode of a process, or undefined if it is gone. */
function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

export async function createLab(options: LabOptions = {}): Promise<Lab> {
  await sweepStaleLabs();
  const subnet = options.subnet ?? '198.51.100';
  const taken = ip(['-4', '-o', 'addr', 'show'])
    .split('\n')
    .find((line) => line.includes(` ${subnet}.`));
  if (taken !== undefined) throw new Error(`${subnet}.0/24 is already in use on this machine (${taken.trim()}): another lab runs`);

  const index = labCount++;
  const tag = `${PREFIX}${process.pid}-${index}`;
  const switchNs = `${tag}-sw`;
  const hostVeth = `atp${process.pid}x${index}`;
  const hosts: LabHost[] = [];
  const children: ChildProcess[] = [];
  const cleanups: (() => void)[] = [];
  const inodes: number[] = [];
  let destroyed = false;

  const addNamespace = (name: string): void => {
    ip(['netns', 'add', name]);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    const inode = netnsInode(`/run/netns/${name}`);
    if (inode !== undefined) inodes.push(inode);
  };

  const lab: Lab = {
    hostAddress: `${subnet}.1`,
    subnet: `${subnet}.0/24`,
    hosts,
    addHost(name, lastOctet) {
      if (destroyed) throw new Error('the lab is destroyed');
      const netns = `${tag}-${name}`;
      const address = `${subnet}.${lastOctet}`;
      addNamespace(netns);
      // One veth pair: "eth0" in the host's namespace, "pN" on the bridge.
      const port = `p${hosts.length}`;
      ip(['link', 'add', 'name', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', port, 'netns', switchNs]);
      ip(['-n', switchNs, 'link', 'set', 'dev', port, 'master', 'br0', 'up']);
      ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', netns, 'link', 'set', 'dev', 'eth0', 'up']);
      let nextPort = 40000;
      const host: LabHost = {
        name,
        netns,
        address,
        subnet: lab.subnet,
        onDestroy: (cleanup) => lab.onDestroy(cleanup),
        port: () => (nextPort += 4),
        spawn(command, args, spawnOptions = {}) {
          const child = spawn('ip', ['netns', 'exec', netns, command, ...args], spawnOptions);
          children.push(child);
          return child;
        },
        run(command, args, timeoutMs = 10_000) {
          return execFileSync('ip', ['netns', 'exec', netns, command, ...args], { encoding: 'utf8', timeout: timeoutMs });
        },
      };
      hosts.push(host);
      return host;
    },
    onDestroy(cleanup) {
      cleanups.push(cleanup);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      const all = [switchNs, ...hosts.map((h) => h.netns)].filter((name) => namespaces().includes(name));
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await killAllIn(all);
      try {
        ip(['link', 'delete', hostVeth]);
      } catch {
        // went with its peer already
      }
      for (const name of all) ip(['netns', 'delete', name]);
      for (const cleanup of cleanups.splice(0).reverse()) cleanup();
      await linksGone((link) => link === hostVeth);
    },
    leftovers() {
      const left: string[] = [];
      for (const name of namespaces()) if (name.startsWith(`${tag}-`)) left.push(`network namespace ${name}`);
      if (hostLinks().includes(hostVeth)) left.push(`link ${hostVeth}`);
      for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
        if (line.includes(`/run/netns/${tag}-`)) left.push(`mount ${line}`);
      }
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const inode = netnsInode(`/proc/${entry}/ns/net`);
        if (inode !== undefined && inodes.includes(inode)) {
          let comm = '?';
          try {
            comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
          } catch {
            // exited meanwhile
          }
          left.push(`process ${entry} (${comm}) in a lab namespace`);
        }
      }
      return left;
    },
  };

  try {
    addNamespace(switchNs);
    ip(['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', switchNs, 'link', 'set', 'br0', 'up']);
    ip(['link', 'add', 'name', hostVeth, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', switchNs]);
    ip(['-n', switchNs, 'link', 'set', 'dev', 'uplink', 'master', 'br0', 'up']);
    ip(['addr', 'add', `${lab.hostAddress}/24`, 'dev', hostVeth]);
    ip(['link', 'set', 'dev', hostVeth, 'up']);
  } catch (error) {
    await lab.destroy();
    throw error;
  }
  return lab;
}

/** Pids of processes whose root directory is `root` (a chroot), for leftover checks. */
export function processesRootedAt(root: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/root`) === root) pids.push(Number(entry));
    } catch {
      // exited, or a kernel thread
    }
  }
  return pids;
}

export { alive as processAlive };
