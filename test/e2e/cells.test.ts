/**
 * Several Asterisks from the one test-bed chroot, each in a network namespace
 * of its own with its own configuration and directories, while the shared
 * test bed keeps running on the host's 127.0.0.1 untouched: a call through a
 * cell is transcribed as on the test bed, and destroying the lab leaves no
 * namespace, link, process or mount behind (test/support/netns.ts,
 * asterisk-cell.ts, cell-service.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { createLab, processesRootedAt, type Lab, type LabHost } from '../support/netns.js';
import { CHROOT, startAsteriskCell, type AsteriskCell } from '../support/asterisk-cell.js';
import { startCellService, type CellService } from '../support/cell-service.js';
import { startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed, streamByLabel } from '../support/stream-checks.js';
import { ariRequest } from '../support/testbed.js';

let lab: Lab;
let edge: LabHost;
const cells: AsteriskCell[] = [];
let service: CellService | undefined;
let streamServer: StrictStreamServer;

/** What the shared test bed has that a cell must not touch. */
function testbedState(): { etc: string; mounts: string[]; ctl: boolean; daemon: number[] } {
  const etcDir = join(CHROOT, 'etc', 'asterisk');
  const hash = createHash('sha256');
  for (const name of readdirSync(etcDir).sort()) hash.update(name).update(readFileSync(join(etcDir, name)));
  return {
    etc: hash.digest('hex'),
    mounts: readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .filter((line) => line.includes(CHROOT)),
    ctl: existsSync(join(CHROOT, 'run', 'asterisk', 'asterisk.ctl')),
    daemon: testbedDaemons(),
  };
}

/**
 * The Asterisk daemons of this run's test bed: rooted at the chroot and in this process's
 * network namespace (another e2e shard's test bed, or a cell, lives in its own), not a
 * remote console (`asterisk -r`/`-rx`, which the tests and testbed.sh run now and then).
 */
function testbedDaemons(): number[] {
  const ownNet = readlinkSync('/proc/self/ns/net');
  return processesRootedAt(CHROOT)
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        const remote = argv.some((arg) => /^-[a-zA-Z]*[rx]/.test(arg));
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'asterisk' && !remote && readlinkSync(`/proc/${pid}/ns/net`) === ownNet;
      } catch {
        return false; // exited meanwhile
      }
    })
    .sort((a, b) => a - b);
}
let before: ReturnType<typeof testbedState>;

beforeAll(async () => {
  before = testbedState();
  lab = await createLab();
  edge = lab.addHost('edge', 10);
  streamServer = await startStrictStreamServer(lab.hostAddress);
});

afterAll(async () => {
  await service?.terminate();
  await lab?.destroy();
  await streamServer?.close();
});

it('runs two cells from the test bed chroot, each with its own address, configuration and directories', async () => {
  for (const [index, name] of ['cell1', 'cell2'].entries()) {
    cells.push(await startAsteriskCell(lab.addHost(name, 11 + index), { name }));
  }
  onTestFailed(() => cells.forEach((cell) => console.log(`--- ${cell.name}\n${cell.logTail(40)}`)));
  for (const cell of cells) {
    const settings = cell.cli('core show settings');
    expect(settings).toMatch(new RegExp(`System name:\\s+${cell.name}\\n`));
    expect(settings).toContain(`Configuration directory:     ${cell.dir}/etc`);
    expect(settings).toContain(`Run/Sockets directory:       ${cell.dir}/run`);
    expect(settings).toContain(`Log directory:               ${cell.dir}/log`);
    expect(existsSync(join(cell.hostDir, 'db', 'astdb.sqlite3')), 'its own astdb').toBe(true);
    expect(cell.cli('pjsip show transports')).toContain(`${cell.host.address}:5060`);
    const info = await cell.ari<{ config: { name: string } }>('GET', '/asterisk/info');
    expect(info.config.name).toBe(cell.name);
  }
  // The shared test bed still answers on 127.0.0.1, and nothing of it changed.
  expect(before.daemon, "the test bed's own daemon").toHaveLength(1);
  await expect(ariRequest('GET', '/asterisk/info')).resolves.toBeDefined();
  expect(testbedState()).toEqual(before);
  for (const cell of cells) {
    expect(processesRootedAt(CHROOT), `${cell.name}: its daemon runs from the chroot`).toContain(cell.pid);
    expect(readlinkSync(`/proc/${cell.pid}/ns/net`), `${cell.name}: in its own namespace`).not.toBe(readlinkSync('/proc/self/ns/net'));
  }
});

it('carries a call through a cell: caller in one namespace, Asterisk, service and callee in another', async () => {
  const cell = cells[0]!;
  const calleePort = cell.host.port();
  service = await startCellService(cell, {
    DESTINATION_DOMAIN: `${cell.host.address}:${calleePort}`,
    STREAM_URL: streamServer.url,
  });
  onTestFailed(() => console.log(`--- service\n${service?.logTail(60)}\n--- ${cell.name}\n${cell.logTail(60)}`));
  const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, host: cell.host, sipPort: calleePort });
  const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 4000, host: edge, target: cell.sip });
  for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);

  const streams = await streamServer.waitForClosedStreams(2, 10_000);
  for (const stream of streams) {
    expectWellFormed(stream);
    expectFrameCountMatchesDuration(stream);
  }
  expectTone(streamByLabel(streams, 'CALLER1'), 16000, 440, [1330]);
  expectTone(streamByLabel(streams, 'CALLER2'), 16000, 1330, [440]);
  await cell.expectNothingLeft();
  expect(await service.terminate()).toBe(0);
  service = undefined;
});

it('leaves nothing behind: namespaces, links, processes, mounts, cell directories', async () => {
  await cells[0]!.stop(); // the orderly way
  expect(existsSync(cells[0]!.hostDir)).toBe(false);
  await lab.destroy(); // cell2 still runs: the way a failed test ends
  expect(lab.leftovers()).toEqual([]);
  for (const cell of cells) expect(existsSync(cell.hostDir), cell.hostDir).toBe(false);
  expect(testbedState()).toEqual(before);
  await expect(ariRequest('GET', '/asterisk/info')).resolves.toBeDefined();
});
