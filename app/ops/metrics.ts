/**
 * The service's Prometheus metrics (GET /metrics), with prom-client. Counts
 * that the call flow already keeps (calls, streams, taps) are read when a
 * scrape comes, not pushed on every frame; only the two histograms (set-up
 * time and per-frame latency) are observed as things happen. No label value
 * is ever a phone number or the id of a single call: labels are outcomes,
 * providers, stream states, legs and transports, a handful of values each.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CallEndOutcome, CallMetrics } from '../calls/call-session.js';
import { FrameHistogram } from './frame-histogram.js';
import type { Leg } from '../transcription/call-streams.js';
import type { StreamSummary, WebsocketStreamState } from '../transcription/websocket-stream.js';

const PREFIX = 'transcription_proxy_';

/** What the metrics read from the running service at each scrape. */
export interface MetricsSource {
  activeCalls(): number;
  /** Every live stream's counters, with its provider. */
  liveStreams(): { provider: string; summary: StreamSummary }[];
  callsAdopted(): number;
  ariReconnects(): number;
}

export interface ServiceMetrics extends CallMetrics {
  readonly registry: Registry;
  /** A call the service turned away while draining (no session was made for it). */
  callHandedBack(): void;
}

const STREAM_STATES: readonly WebsocketStreamState[] = ['idle', 'connecting', 'open', 'waiting', 'ended'];

export function createMetrics(source: MetricsSource, options: { defaultMetrics?: boolean } = {}): ServiceMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: PREFIX, eventLoopMonitoringPrecision: 20 });

  const callsTotal = new Counter({
    name: `${PREFIX}calls_total`,
    help: 'Calls ended, by how they ended.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  // Counted in plain numbers on every frame; the counter reads them at each scrape.
  const received: Record<Leg, number> = { A: 0, B: 0 };
  new Counter({
    name: `${PREFIX}frames_received_total`,
    help: 'Audio frames tapped from Asterisk, by leg.',
    labelNames: ['leg'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ leg: 'A' }, received.A);
      this.inc({ leg: 'B' }, received.B);
    },
  });
  // Totals of streams that have ended; live streams are added at each scrape.
  const ended = new Map<string, { sent: number; dropped: number; reconnects: number }>();
  const totals = (provider: string) => {
    let entry = ended.get(provider);
    if (entry === undefined) {
      entry = { sent: 0, dropped: 0, reconnects: 0 };
      ended.set(provider, entry);
    }
    return entry;
  };
  const sumByProvider = (
    pick: (summary: StreamSummary) => number,
    pickEnded: (entry: { sent: number; dropped: number; reconnects: number }) => number,
  ) => {
    const sums = new Map<string, number>();
    for (const [provider, entry] of ended) sums.set(provider, pickEnded(entry));
    for (const { provider, summary } of source.liveStreams()) sums.set(provider, (sums.get(provider) ?? 0) + pick(summary));
    return sums;
  };
  const providerCounter = (
    name: string,
    help: string,
    pick: (s: StreamSummary) => number,
    pickEnded: (e: { sent: number; dropped: number; reconnects: number }) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['provider'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [provider, value] of sumByProvider(pick, pickEnded)) this.inc({ provider }, value);
      },
    });
  providerCounter(
    `${PREFIX}frames_sent_total`,
    'Audio frames sent to the transcription server, by provider.',
    (s) => s.framesSent,
    (e) => e.sent,
  );
  providerCounter(
    `${PREFIX}frames_dropped_total`,
    'Audio frames dropped (a stream buffer overflowed during an outage), by provider.',
    (s) => s.framesDropped,
    (e) => e.dropped,
  );
  providerCounter(
    `${PREFIX}stream_reconnects_total`,
    'Stream connections made again after an outage, by provider.',
    (s) => s.reconnects,
    (e) => e.reconnects,
  );

  new Gauge({
    name: `${PREFIX}calls_active`,
    help: 'Calls in progress in this instance.',
    registers: [registry],
    collect() {
      this.set(source.activeCalls());
    },
  });
  new Gauge({
    name: `${PREFIX}streams`,
    help: 'Streams of calls in progress, by provider and state (open, waiting: reconnecting after an outage, connecting, ended).',
    labelNames: ['provider', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const { provider, summary } of source.liveStreams()) {
        const key = `${provider}\u0000${summary.state}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const key of counts.keys()) {
        const [provider, state] = key.split('\u0000') as [string, string];
        this.set({ provider, state }, counts.get(key)!);
      }
      for (const state of STREAM_STATES)
        if (![...counts.keys()].some((key) => key.endsWith(`\u0000${state}`))) this.set({ provider: 'any', state }, 0);
    },
  });
  new Gauge({
    name: `${PREFIX}stream_buffered_seconds`,
    help: 'Audio held for streams that cannot send it now (their server is unreachable), in seconds, summed.',
    registers: [registry],
    collect() {
      this.set(source.liveStreams().reduce((sum, { summary }) => sum + summary.bufferedMs, 0) / 1000);
    },
  });
  new Counter({
    name: `${PREFIX}calls_adopted_total`,
    help: 'Calls this instance took over from Asterisk (after a restart, a crash, or from a replaced instance).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.callsAdopted());
    },
  });
  const tapsReplaced = new Counter({
    name: `${PREFIX}taps_replaced_total`,
    help: 'Taps replaced because they delivered no audio, by transport.',
    labelNames: ['transport'],
    registers: [registry],
  });
  for (const transport of ['rtp', 'audiosocket', 'websocket']) tapsReplaced.inc({ transport }, 0);
  new Counter({
    name: `${PREFIX}ari_reconnects_total`,
    help: 'Times the ARI event connection came back after a loss.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.ariReconnects());
    },
  });
  const setup = new Histogram({
    name: `${PREFIX}call_setup_seconds`,
    help: 'From a call entering the app (StasisStart) to all of its streams open.',
    buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60],
    registers: [registry],
  });
  const latency = new FrameHistogram({
    name: `${PREFIX}frame_latency_seconds`,
    help: 'From tapped audio reaching the service to its frame leaving on the websocket (buffered frames: their time in the buffer).',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
    registers: [registry],
  });
  for (const outcome of ['completed', 'busy', 'no_answer', 'refused', 'failed', 'handed_back', 'released', 'handed_over'] as const)
    callsTotal.inc({ outcome }, 0);

  return {
    registry,
    callEnded(outcome: CallEndOutcome) {
      callsTotal.inc({ outcome });
    },
    callHandedBack() {
      callsTotal.inc({ outcome: 'handed_back' });
    },
    setupSeconds(seconds: number) {
      setup.observe(seconds);
    },
    frameLatencyMs(ms: number) {
      latency.observe(ms / 1000);
    },
    framesReceived(leg: Leg) {
      received[leg]++;
    },
    tapReplaced(transport: string) {
      tapsReplaced.inc({ transport });
    },
    streamsEnded(summaries, provider) {
      const entry = totals(provider);
      for (const summary of summaries) {
        entry.sent += summary.framesSent;
        entry.dropped += summary.framesDropped;
        entry.reconnects += summary.reconnects;
      }
    },
  };
}
