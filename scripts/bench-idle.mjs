// Idle memory of the service: `serve` as users run it, connected to the
// Asterisk test bed, no call, sampled from /proc for a minute after "service
// ready" (V8 gives back what start-up used only once it has been idle a while,
// about 20 to 30 s). Each sample: RSS, its anonymous part (the service's own
// memory) and its file-backed part (mostly the node binary's code, shared by
// every node process and reclaimable), and at the end which mappings hold the
// resident memory. Results: stdout, --out FILE (a JSON line, bench-lib record()).
//   npm run bench:idle -- [--rounds N] [--node-args "FLAGS"] [--service-env K=V,...] [--main CLI] [--out FILE]
// Needs root (the test bed); starts and stops it unless it runs (hold its lock).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  TESTBED,
  benchService,
  option,
  record,
  residentByMapping,
  serviceEnvOption,
  sleep,
  startSink,
  statusKiB,
  stopService,
} from './bench-lib.mjs';

const args = process.argv.slice(2);
const rounds = Number(option(args, 'rounds', '3'));
const out = option(args, 'out', undefined);
const nodeArgs = (option(args, 'node-args', '') || '').split(' ').filter(Boolean);
const extraEnv = serviceEnvOption(args);
const main = option(args, 'main', undefined);
const AT_S = [2, 10, 20, 30, 45, 60];

async function round() {
  const sink = await startSink();
  const { service, allocator } = await benchService(sink, { transport: 'rtp', mode: 'split', env: extraEnv, nodeArgs, main });
  try {
    const t0 = Date.now();
    const samples = [];
    for (const atS of AT_S) {
      await sleep(atS * 1000 - (Date.now() - t0));
      samples.push({
        atS,
        rssMiB: statusKiB(service.pid, 'VmRSS') / 1024,
        anonMiB: statusKiB(service.pid, 'RssAnon') / 1024,
        fileMiB: statusKiB(service.pid, 'RssFile') / 1024,
      });
    }
    const mappings = residentByMapping(service.pid);
    return { samples, mappings, allocator };
  } finally {
    await stopService(service);
    await sink.close();
  }
}

const running = spawnSync('bash', [TESTBED, 'status'], { stdio: 'ignore' }).status === 0;
if (!running) execFileSync('bash', [TESTBED, 'start'], { stdio: 'inherit' });
try {
  for (let i = 0; i < rounds; i++) {
    const { samples, mappings, allocator } = await round();
    const result = {
      date: new Date().toISOString(),
      bench: 'idle',
      allocator,
      ...(main !== undefined && { main }),
      ...(nodeArgs.length > 0 && { nodeArgs }),
      ...(Object.keys(extraEnv).length > 0 && { serviceEnv: extraEnv }),
      samples,
      mappings,
    };
    record(out, result);
    console.log(
      samples.map((s) => `${s.atS} s: ${s.rssMiB.toFixed(1)} (anon ${s.anonMiB.toFixed(1)}, file ${s.fileMiB.toFixed(1)})`).join(' | '),
    );
    console.log(`  resident: ${mappings.map((m) => `${m.name} ${m.MiB.toFixed(1)}`).join(', ')}`);
  }
} finally {
  if (!running) execFileSync('bash', [TESTBED, 'stop'], { stdio: 'inherit' });
}
