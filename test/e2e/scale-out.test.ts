/**
 * Scale-out behind Kamailio (docs/scale-out.md), on one machine: the shipped
 * dispatcher (asterisk/kamailio/kamailio.cfg) and a SIPp caller in one
 * network namespace; two cells, each its own Asterisk (with the shipped cell
 * files of asterisk/cell/ and asterisk/plain/), its own service (NODE_NAME)
 * and its own SIPp callee, in two others; the test's stream server on the
 * lab address of the test process, reached by both cells.
 *
 * Each cell's callee plays a tone of its own, so the audio itself says which
 * cell carried a call; the metadata's `node` must agree.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { createLab, type Lab, type LabHost } from '../support/netns.js';
import { startAsteriskCell, type AsteriskCell } from '../support/asterisk-cell.js';
import { startCellService, type CellService } from '../support/cell-service.js';
import { cellStates, startKamailio, type Kamailio } from '../support/kamailio.js';
import { startSipp, type SippPeer } from '../support/sipp.js';
import { startStrictStreamServer, type ReceivedStream, type StrictStreamServer } from '../support/strict-stream-server.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed } from '../support/stream-checks.js';

const PROBE_INTERVAL_S = 2;
const CELL_TIMEOUT_MS = 1000;
const CALLER_HZ = 440;
const CELL_NAMES = ['cell1', 'cell2'] as const;
type CellName = (typeof CELL_NAMES)[number];
/** The tone of each cell's callee. */
const CALLEE_HZ: Record<CellName, number> = { cell1: 1330, cell2: 1730 };

const shipped = (path: string) => readFileSync(fileURLToPath(new URL(`../../asterisk/${path}`, import.meta.url)), 'utf8');

interface Cell {
  name: CellName;
  host: LabHost;
  asterisk: AsteriskCell;
  calleePort: number;
  callee: SippPeer;
  service: CellService | undefined;
}

let lab: Lab;
let edge: LabHost;
let kamailio: Kamailio;
let streamServer: StrictStreamServer;
const cells: Cell[] = [];

/** The cell's Asterisk configuration: the shipped cell and plain files, as a user installs them. */
function cellFiles(host: LabHost, dispatcher: string, calleePort: number): Record<string, string> {
  const identify = shipped('cell/pjsip_cell.conf');
  const placeholder = /^match = 192\.0\.2\.10$/m;
  if (!placeholder.test(identify)) throw new Error('asterisk/cell/pjsip_cell.conf: placeholder match line not found');
  return {
    'pjsip_cell.conf': identify.replace(placeholder, `match = ${dispatcher}`),
    'extensions_cell.conf': shipped('cell/extensions_cell.conf'),
    'pjsip_transcription-proxy.conf': shipped('plain/pjsip_transcription-proxy.conf'),
    'extensions_transcription-proxy.conf': shipped('plain/extensions_transcription-proxy.conf'),
    'pjsip.conf': [
      '[global]',
      'type = global',
      `user_agent = transcription-proxy-${host.name}`,
      '',
      '[transport-udp]',
      'type = transport',
      'protocol = udp',
      `bind = ${host.address}:5060`,
      '',
      '#include pjsip_transcription-proxy.conf',
      '#include pjsip_cell.conf',
      '',
    ].join('\n'),
    'extensions.conf': [
      '[general]',
      'static = yes',
      'writeprotect = yes',
      '',
      '[globals]',
      'TRANSCRIPTION_CELL_FALLBACK = reject',
      `TRANSCRIPTION_DESTINATION_DOMAIN = ${host.address}:${calleePort}`,
      '',
      '#include extensions_transcription-proxy.conf',
      '#include extensions_cell.conf',
      '',
    ].join('\n'),
  };
}

async function startService(cell: Cell): Promise<CellService> {
  cell.service = await startCellService(cell.asterisk, {
    NODE_NAME: cell.name,
    DESTINATION_DOMAIN: `${cell.host.address}:${cell.calleePort}`,
    STREAM_URL: streamServer.url,
    // A call left over by a failed test holds a drain this long at most.
    DRAIN_TIMEOUT_MS: '20000',
  });
  return cell.service;
}

beforeAll(async () => {
  lab = await createLab();
  edge = lab.addHost('edge', 10);
  streamServer = await startStrictStreamServer(lab.hostAddress);
  for (const [index, name] of CELL_NAMES.entries()) {
    const host = lab.addHost(name, 11 + index);
    const calleePort = host.port();
    const asterisk = await startAsteriskCell(host, { name, files: cellFiles(host, edge.address, calleePort) });
    const callee = await startSipp({
      scenario: 'callee.xml',
      toneHz: CALLEE_HZ[name],
      host,
      sipPort: calleePort,
      calls: 1000,
      timeoutSeconds: 600,
    });
    const cell: Cell = { name, host, asterisk, calleePort, callee, service: undefined };
    cells.push(cell);
    await startService(cell);
  }
  kamailio = await startKamailio(edge, {
    cells: cells.map((cell) => cell.asterisk.sip),
    probeIntervalS: PROBE_INTERVAL_S,
    cellTimeoutMs: CELL_TIMEOUT_MS,
  });
}, 90_000);

afterAll(async () => {
  await lab?.destroy();
  await streamServer?.close();
});

function printOnFailure(): void {
  onTestFailed(() => {
    console.log(`--- Kamailio\n${kamailio.logTail(60)}`);
    for (const cell of cells)
      console.log(`--- ${cell.name} service\n${cell.service?.logTail(40)}\n--- ${cell.name} Asterisk\n${cell.asterisk.logTail(40)}`);
  });
}

/** `count` calls from the edge through Kamailio (10 per second, at most `atOnce` at a time), each From user `callerId`, held `holdMs`. */
function placeCalls(callerId: string, count: number, holdMs: number, atOnce = count): Promise<SippPeer> {
  return startSipp({
    scenario: 'caller-via-proxy.xml',
    toneHz: CALLER_HZ,
    service: '4567',
    callerId,
    holdMs,
    calls: count,
    ratePerSecond: 10,
    concurrentCalls: atOnce,
    host: edge,
    target: kamailio.sip,
  });
}

interface CallStreams {
  callId: string;
  node: CellName;
  caller: ReceivedStream;
  callee: ReceivedStream;
}

/** The streams of the calls from `callerId`, by call; each call has exactly one CALLER1 and one CALLER2 and names one node. */
function callsFrom(callerId: string): CallStreams[] {
  const byCall = new Map<string, ReceivedStream[]>();
  for (const stream of streamServer.streams.filter((s) => s.metadata?.caller === callerId)) {
    const callId = String(stream.metadata?.callId);
    byCall.set(callId, [...(byCall.get(callId) ?? []), stream]);
  }
  return [...byCall].map(([callId, streams]) => {
    expect(streams.map((s) => s.metadata?.label).sort(), `labels of call ${callId}`).toEqual(['CALLER1', 'CALLER2']);
    const nodes = new Set(streams.map((s) => s.metadata?.node));
    expect(nodes.size, `call ${callId} names one node`).toBe(1);
    const node = [...nodes][0] as CellName;
    expect(CELL_NAMES, `node of call ${callId}`).toContain(node);
    return {
      callId,
      node,
      caller: streams.find((s) => s.metadata?.label === 'CALLER1')!,
      callee: streams.find((s) => s.metadata?.label === 'CALLER2')!,
    };
  });
}

/** Transcribed whole and right: the caller's tone on CALLER1, the tone of the named cell's callee on CALLER2. */
function expectTranscribed(call: CallStreams): void {
  const other: CellName = call.node === 'cell1' ? 'cell2' : 'cell1';
  for (const stream of [call.caller, call.callee]) {
    expectWellFormed(stream);
    expectFrameCountMatchesDuration(stream);
  }
  expectTone(call.caller, 16000, CALLER_HZ, [CALLEE_HZ.cell1, CALLEE_HZ.cell2]);
  // The audio says which cell carried the call: the metadata must say the same.
  expectTone(call.callee, 16000, CALLEE_HZ[call.node], [CALLER_HZ, CALLEE_HZ[other]]);
}

const closedStreamsFrom = (callerId: string) =>
  streamServer.streams.filter((s) => s.metadata?.caller === callerId && s.closeCode !== undefined).length;
const streamingFrom = (callerId: string) =>
  streamServer.streams.filter((s) => s.metadata?.caller === callerId && s.frames.length >= 25).length;

it('spreads 20 calls over both cells, each transcribed with the tones on the right labels and its cell named', async () => {
  printOnFailure();
  // At most 10 at a time: two Asterisks, two services and SIPp share two cores.
  const caller = await placeCalls('2001', 20, 4000, 10);
  const result = await caller.done;
  expect(result.exitCode, result.stderr).toBe(0);
  await expect.poll(() => closedStreamsFrom('2001'), { timeout: 10_000 }).toBe(40);

  const calls = callsFrom('2001');
  expect(calls, 'distinct call ids across the cells').toHaveLength(20);
  for (const call of calls) expectTranscribed(call);
  const perCell = CELL_NAMES.map((name) => calls.filter((call) => call.node === name).length);
  expect(perCell[0], 'calls on cell1').toBeGreaterThan(0);
  expect(perCell[1], 'calls on cell2').toBeGreaterThan(0);
  for (const cell of cells) await cell.asterisk.expectNothingLeft();
}, 60_000);

it('drains cell 1 on SIGTERM: its calls finish transcribed, new calls all land on cell 2', async () => {
  printOnFailure();
  const [cell1] = cells as [Cell, Cell];
  const HOLD_MS = 8000;
  const before = await placeCalls('2002', 6, HOLD_MS);
  await expect.poll(() => streamingFrom('2002'), { timeout: 10_000 }).toBe(12);
  const onCell1 = new Set(
    streamServer.streams.filter((s) => s.metadata?.caller === '2002' && s.metadata?.node === 'cell1').map((s) => s.metadata?.callId),
  );
  expect(onCell1.size, 'calls in progress on cell 1').toBeGreaterThan(0);

  const logFrom = kamailio.log.length;
  const exited = cell1.service!.terminate();
  await expect.poll(() => cell1.service!.readyStatus(), { timeout: 5000 }).toBe(503);
  const after = await placeCalls('2003', 4, 4000);

  const [beforeResult, afterResult, exitCode] = await Promise.all([before.done, after.done, exited]);
  // The upgrade's second half, before any assertion can fail: the new instance on cell 1.
  await startService(cell1);
  expect(beforeResult.exitCode, beforeResult.stderr).toBe(0);
  expect(afterResult.exitCode, afterResult.stderr).toBe(0);
  expect(exitCode, 'the drained service exits 0 once its calls ended').toBe(0);
  await expect.poll(() => closedStreamsFrom('2002') + closedStreamsFrom('2003'), { timeout: 10_000 }).toBe(20);

  // Cell 1's calls went on, transcribed, to their end.
  for (const call of callsFrom('2002')) {
    expectTranscribed(call);
    expect(call.caller.frames.length, `frames of ${call.node}'s call ${call.callId}`).toBeGreaterThan((HOLD_MS - 1500) / 20);
  }
  // Every new call landed on cell 2: cell 1 answered 503 and Kamailio tried the next cell.
  const newCalls = callsFrom('2003');
  expect(newCalls).toHaveLength(4);
  for (const call of newCalls) {
    expect(call.node).toBe('cell2');
    expectTranscribed(call);
  }
  const failovers = kamailio.log
    .slice(logFrom)
    .filter((line) => line.text.includes(`cell sip:${cell1.asterisk.sip} answered 503: trying the next cell`));
  expect(failovers.length, 'cell 1 turned calls away with 503').toBeGreaterThan(0);
  for (const cell of cells) await cell.asterisk.expectNothingLeft();
}, 60_000);

it('takes cell 2 out within its probe interval once its Asterisk is killed; new calls land on cell 1', async () => {
  printOnFailure();
  const [cell1, cell2] = cells as [Cell, Cell];
  // Cell 1 has its new instance (the drain test started it, unless it failed first).
  if (cell1.service?.readyStatus() !== 200) await startService(cell1);
  const logFrom = kamailio.log.length;
  const killedAt = performance.now();
  await cell2.asterisk.kill();
  const down = await kamailio.waitForLog(new RegExp(`cell down: sip:${cell2.asterisk.sip.replace(/\./g, '\\.')}`), 10_000, logFrom);
  expect(down.atMs - killedAt, 'ms until Kamailio took cell 2 out').toBeLessThanOrEqual(PROBE_INTERVAL_S * 1000 + CELL_TIMEOUT_MS + 500);
  expect(cellStates(kamailio).get(`sip:${cell2.asterisk.sip}`)).toMatch(/^I/);
  expect(cellStates(kamailio).get(`sip:${cell1.asterisk.sip}`)).toMatch(/^A/);

  const afterDown = kamailio.log.length;
  const caller = await placeCalls('2004', 4, 4000);
  const result = await caller.done;
  expect(result.exitCode, result.stderr).toBe(0);
  await expect.poll(() => closedStreamsFrom('2004'), { timeout: 10_000 }).toBe(8);
  const calls = callsFrom('2004');
  expect(calls).toHaveLength(4);
  for (const call of calls) {
    expect(call.node).toBe('cell1');
    expectTranscribed(call);
  }
  // Kamailio did not even try cell 2.
  expect(kamailio.log.slice(afterDown).filter((line) => line.text.includes(cell2.asterisk.sip))).toEqual([]);
  await cell1.asterisk.expectNothingLeft();
}, 60_000);

it('connects calls untranscribed instead, with TRANSCRIPTION_CELL_FALLBACK=connect (a single box)', async () => {
  printOnFailure();
  const [cell1] = cells as [Cell, Cell];
  cell1.asterisk.cli('dialplan set global TRANSCRIPTION_CELL_FALLBACK connect');
  expect(await cell1.service!.terminate()).toBe(0);
  cell1.service = undefined;
  const logFrom = kamailio.log.length;
  const caller = await placeCalls('2005', 1, 2000);
  const result = await caller.done;
  expect(result.exitCode, result.stderr).toBe(0); // answered by cell 1's callee
  expect(
    streamServer.streams.filter((s) => s.metadata?.caller === '2005'),
    'no stream: untranscribed',
  ).toEqual([]);
  expect(kamailio.log.slice(logFrom).filter((line) => line.text.includes('answered 503'))).toEqual([]);
  await cell1.asterisk.expectNothingLeft();
}, 30_000);

it('leaves nothing behind: namespaces, links, processes, mounts, cell directories', async () => {
  await kamailio.stop();
  for (const cell of cells) {
    if (cell.service) expect(await cell.service.terminate(), `${cell.name}'s service exits 0`).toBe(0);
    await cell.asterisk.stop();
  }
  await lab.destroy();
  expect(lab.leftovers()).toEqual([]);
});
