/**
 * The frame aligner driven by a fake clock. Every frame is filled with a tag
 * naming its leg and sequence number, so each output slot says which frames it
 * paired; `Bench` records that and checks, on every slot, that both buffers are
 * one frame long and each channel only carries its own leg, in order.
 */
import { describe, expect, it } from 'vitest';
import { FrameAligner, type FrameAlignerOptions } from '../../app/transcription/frame-aligner.js';

const FRAME_BYTES = 320;
const FRAME_MS = 20;
const MAX_WAIT_MS = 100;
const MAX_AHEAD_SLOTS = 50;
/** The bound the aligner documents for its held frames. */
const HELD_BOUND = (maxAheadSlots: number, maxWaitMs: number) => 2 * (maxAheadSlots + Math.ceil(maxWaitMs / FRAME_MS) + 2);

type Leg = 0 | 1;
const A: Leg = 0;
const B: Leg = 1;
const LEG_BIT = [0x4000, 0x8000] as const;

/** A frame whose every sample is its leg's bit and its sequence number (below 0x4000). */
function frameOf(leg: Leg, seq: number): Buffer {
  const tag = Buffer.alloc(2);
  tag.writeUInt16LE(LEG_BIT[leg] | seq);
  return Buffer.alloc(FRAME_BYTES, tag);
}

/** The sequence number a frame of `leg` carries, or undefined for silence. */
function seqOf(frame: Buffer, leg: Leg): number | undefined {
  expect(frame.length).toBe(FRAME_BYTES);
  const value = frame.readUInt16LE(0);
  expect(frame.equals(Buffer.alloc(FRAME_BYTES, frame.subarray(0, 2))), 'a frame is uniform').toBe(true);
  if (value === 0) return undefined;
  expect(value & ~0x3fff, 'a channel carries its own leg only').toBe(LEG_BIT[leg]);
  return value & 0x3fff;
}

interface Push {
  atMs: number;
  leg: Leg;
  seq: number;
  /** A frame of this many bytes instead of a tagged one. */
  badBytes?: number;
  /** What the transport says was lost before the frame (see FrameAligner.push). */
  lostBefore?: number;
}

type Rng = () => number;

/** xorshift32: a small seedable PRNG; returns [0, 1). The seed is hashed first, so nearby seeds give unrelated sequences. */
function xorshift32(seed: number): Rng {
  let x = Math.imul(seed ^ (seed >>> 16), 0x45d9f3b) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

interface SteadyPlan {
  first?: number;
  count: number;
  startMs?: number;
  periodMs?: number;
  /** Uniform jitter in [-jitterMs, +jitterMs]; arrivals stay in order. */
  jitterMs?: number;
  rng?: Rng;
}

/** A leg sending frames first..first+count-1, one every periodMs from startMs. */
function steady(
  leg: Leg,
  { first = 0, count, startMs = 1000, periodMs = FRAME_MS, jitterMs = 0, rng = xorshift32(leg + 1) }: SteadyPlan,
): Push[] {
  const pushes: Push[] = [];
  let lastMs = -Infinity;
  for (let i = 0; i < count; i++) {
    lastMs = Math.max(lastMs, startMs + i * periodMs + (rng() * 2 - 1) * jitterMs);
    pushes.push({ atMs: lastMs, leg, seq: first + i });
  }
  return pushes;
}

class Bench {
  nowMs = 0;
  /** Per slot, the sequence numbers of A's and B's frames (undefined: silence). */
  readonly slots: [number | undefined, number | undefined][] = [];
  readonly arrivedMs: [Map<number, number>, Map<number, number>] = [new Map(), new Map()];
  readonly emittedMs: [Map<number, number>, Map<number, number>] = [new Map(), new Map()];
  readonly pushed: [number, number] = [0, 0];
  readonly emittedCount: [number, number] = [0, 0];
  readonly aligner: FrameAligner;
  readonly #lastSeq: [number, number] = [-1, -1];
  readonly #arrivalOrder: [Push[], Push[]] = [[], []];
  readonly #overdueChecked: [number, number] = [0, 0];

  constructor(options: Partial<FrameAlignerOptions> = {}) {
    this.aligner = new FrameAligner({
      frameBytes: FRAME_BYTES,
      now: () => this.nowMs,
      onFrame: (left, right) => this.#record(left, right),
      ...options,
    });
  }

  /** Pushes in time order (stable: at equal times, in the order given). */
  run(pushes: Push[], afterEach?: (push: Push) => void): this {
    const ordered = pushes.map((push, i) => ({ push, i })).sort((x, y) => x.push.atMs - y.push.atMs || x.i - y.i);
    for (const { push } of ordered) {
      this.nowMs = push.atMs;
      if (push.badBytes !== undefined) {
        this.aligner.push(push.leg, Buffer.alloc(push.badBytes));
      } else {
        this.arrivedMs[push.leg].set(push.seq, push.atMs);
        this.#arrivalOrder[push.leg].push(push);
        this.pushed[push.leg]++;
        this.aligner.push(push.leg, frameOf(push.leg, push.seq), push.lostBefore);
      }
      expect(this.aligner.stats.slots).toBe(this.slots.length);
      afterEach?.(push);
    }
    return this;
  }

  flush(): this {
    this.aligner.flush();
    expect(this.aligner.pendingFrames).toBe(0);
    expect(this.aligner.stats.slots).toBe(this.slots.length);
    return this;
  }

  slotOf(leg: Leg, seq: number): number {
    return this.slots.findIndex((slot) => slot[leg] === seq);
  }

  emitted(leg: Leg): number[] {
    return this.slots.flatMap((slot) => (slot[leg] === undefined ? [] : [slot[leg]]));
  }

  silentSlots(leg: Leg): number {
    return this.slots.filter((slot) => slot[leg] === undefined).length;
  }

  /** Every frame of the leg that arrived maxWaitMs ago or earlier has gone out (checked once per frame). */
  expectNothingOverdue(leg: Leg, maxWaitMs = MAX_WAIT_MS): void {
    const arrivals = this.#arrivalOrder[leg];
    for (; this.#overdueChecked[leg] < arrivals.length; this.#overdueChecked[leg]++) {
      const { seq, atMs } = arrivals[this.#overdueChecked[leg]]!;
      if (atMs > this.nowMs - maxWaitMs) break;
      expect(this.emittedMs[leg].has(seq), `leg ${leg} frame ${seq} out by ${this.nowMs}`).toBe(true);
    }
  }

  /** Every frame pushed is out, dropped (and counted) or still held. */
  expectAllAccountedFor(): void {
    const { droppedLate, droppedAhead } = this.aligner.stats;
    const out = this.emittedCount[0] + this.emittedCount[1];
    expect(out + droppedLate[0] + droppedLate[1] + droppedAhead[0] + droppedAhead[1] + this.aligner.pendingFrames).toBe(
      this.pushed[0] + this.pushed[1],
    );
  }

  #record(left: Buffer, right: Buffer): void {
    const slot: [number | undefined, number | undefined] = [seqOf(left, A), seqOf(right, B)];
    for (const leg of [A, B]) {
      const seq = slot[leg];
      if (seq === undefined) continue;
      expect(seq, `leg ${leg} keeps its order`).toBeGreaterThan(this.#lastSeq[leg]);
      this.#lastSeq[leg] = seq;
      this.emittedMs[leg].set(seq, this.nowMs);
      this.emittedCount[leg]++;
    }
    this.slots.push(slot);
  }
}

/** The leg's frames 0..count-1 all came out, in consecutive slots: no silence between its first and last frame. */
function expectUnbroken(bench: Bench, leg: Leg, count: number): void {
  expect(bench.emitted(leg)).toEqual(Array.from({ length: count }, (_, i) => i));
  expect(bench.slotOf(leg, count - 1) - bench.slotOf(leg, 0)).toBe(count - 1);
}

function expectNoLossOrSilence(bench: Bench): void {
  const { silenceSlots, droppedLate, droppedAhead, droppedBadSize, resyncs } = bench.aligner.stats;
  expect({ silenceSlots, droppedLate, droppedAhead, droppedBadSize, resyncs }).toEqual({
    silenceSlots: [0, 0],
    droppedLate: [0, 0],
    droppedAhead: [0, 0],
    droppedBadSize: [0, 0],
    resyncs: [0, 0],
  });
}

/** Slot i carries A's frame i and B's frame i. */
function expectPairedByIndex(bench: Bench, count: number): void {
  expect(bench.slots).toEqual(Array.from({ length: count }, (_, i) => [i, i]));
}

describe('FrameAligner: steady legs', () => {
  for (const phaseMs of [0, 7, 13, 19]) {
    it(`pairs A[i] with B[i] for a phase offset of ${phaseMs} ms and ±3 ms jitter, with no silence and no drop`, () => {
      const rng = xorshift32(0x1000 + phaseMs);
      const bench = new Bench();
      bench.run([...steady(A, { count: 500, jitterMs: 3, rng }), ...steady(B, { count: 500, startMs: 1000 + phaseMs, jitterMs: 3, rng })]);
      bench.flush();
      expectNoLossOrSilence(bench);
      expectPairedByIndex(bench, 500);
    });
  }

  it('pairs the legs the same way when B starts first', () => {
    const bench = new Bench();
    bench.run([...steady(A, { count: 200, startMs: 1004 }), ...steady(B, { count: 200 })]).flush();
    expectNoLossOrSilence(bench);
    expectPairedByIndex(bench, 200);
  });

  for (const ppm of [500, -500]) {
    it(`follows a ${ppm} ppm drift of Asterisk's clock against ours over 60 s without silence or drops`, () => {
      const rng = xorshift32(0x2000 + ppm);
      const periodMs = FRAME_MS * (1 + ppm * 1e-6);
      const bench = new Bench();
      bench.run([
        ...steady(A, { count: 3000, periodMs, jitterMs: 3, rng }),
        ...steady(B, { count: 3000, startMs: 1009, periodMs, jitterMs: 3, rng }),
      ]);
      bench.flush();
      expectNoLossOrSilence(bench);
      expectPairedByIndex(bench, 3000);
    });
  }

  it('never drops a frame under ±30 ms of jitter', () => {
    for (let run = 0; run < 5; run++) {
      const rng = xorshift32(0x2800 + run);
      const bench = new Bench();
      bench.run([
        ...steady(A, { count: 1000, jitterMs: 30, rng }),
        ...steady(B, { count: 1000, startMs: 1000 + rng() * 17, jitterMs: 30, rng }),
      ]);
      bench.flush();
      expect(bench.emitted(A)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(bench.emitted(B)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    }
  });

  it('keeps the legs within about a frame when their own clocks drift 500 ppm apart, by silence, never by dropping', () => {
    const rng = xorshift32(0x2500);
    const bench = new Bench();
    bench.run([
      ...steady(A, { count: 3000, jitterMs: 3, rng }),
      ...steady(B, { count: 3000, startMs: 1005, periodMs: FRAME_MS * 1.0005, jitterMs: 3, rng }),
    ]);
    bench.flush();
    const { droppedLate, droppedAhead, silenceSlots, resyncs } = bench.aligner.stats;
    expect([droppedLate, droppedAhead]).toEqual([
      [0, 0],
      [0, 0],
    ]);
    expect(bench.emitted(B).length).toBe(3000);
    // B falls 30 ms behind over the minute: it takes a slot or two of silence once, A none (but at the end, after its last frame).
    expectUnbroken(bench, A, 3000);
    expect(resyncs).toEqual([0, 1]);
    expect(silenceSlots[1]).toBeLessThanOrEqual(2);
    for (const [a, b] of bench.slots) {
      if (a === undefined || b === undefined) continue;
      expect(Math.abs(bench.arrivedMs[B].get(b)! - bench.arrivedMs[A].get(a)!)).toBeLessThanOrEqual(1.5 * FRAME_MS + 10);
    }
  });

  it('makes one onFrame call per slot, each with two frames of frameBytes', () => {
    const calls: [Buffer, Buffer][] = [];
    let nowMs = 0;
    const aligner = new FrameAligner({ frameBytes: 640, now: () => nowMs, onFrame: (left, right) => calls.push([left, right]) });
    for (let i = 0; i < 100; i++) {
      nowMs = i * FRAME_MS;
      aligner.push(0, Buffer.alloc(640, 1));
      if (i % 3 !== 0) aligner.push(1, Buffer.alloc(640, 2));
    }
    aligner.flush();
    expect(calls.length).toBe(aligner.stats.slots);
    expect(calls.length).toBe(100);
    for (const [left, right] of calls) expect([left.length, right.length]).toEqual([640, 640]);
  });
});

describe('FrameAligner: a leg goes missing', () => {
  /** 3 s of both legs, B's frames 50..99 (1 s) never sent. */
  function gapPlan(bPhaseMs: number, jitterMs: number): Push[] {
    const rng = xorshift32(0x3000 + bPhaseMs);
    return [
      ...steady(A, { count: 150, jitterMs, rng }),
      ...steady(B, { count: 150, startMs: 1000 + bPhaseMs, jitterMs, rng }).filter((push) => push.seq < 50 || push.seq >= 100),
    ];
  }

  for (const bFirst of [false, true]) {
    it(`turns 1 s of B's missing frames into silence and keeps what follows aligned (${bFirst ? 'B' : 'A'} pushed first)`, () => {
      const pushes = gapPlan(0, 0);
      const bench = new Bench();
      bench.run(bFirst ? [...pushes.filter((p) => p.leg === B), ...pushes.filter((p) => p.leg === A)] : pushes, () =>
        bench.expectNothingOverdue(A),
      );
      bench.flush();
      // B's first frame after the gap and a later marker, each pushed at the same moment as A's: same slot.
      expect(bench.slotOf(B, 100)).toBe(bench.slotOf(A, 100));
      expect(bench.slotOf(B, 120)).toBe(bench.slotOf(A, 120));
      expect(bench.slots).toEqual(Array.from({ length: 150 }, (_, i) => [i, i >= 50 && i < 100 ? undefined : i]));
      expect(bench.aligner.stats.silenceSlots).toEqual([0, 50]);
      expect(bench.aligner.stats.resyncs).toEqual([0, 1]);
      expect(bench.aligner.stats.droppedLate).toEqual([0, 0]);
    });
  }

  for (const bPhaseMs of [0, 7]) {
    it(`puts a marker pushed at the same moment on both legs after the gap in the same slot (phase ${bPhaseMs} ms, ±3 ms jitter)`, () => {
      const pushes = gapPlan(bPhaseMs, 3);
      const markerA = pushes.find((p) => p.leg === A && p.seq === 120)!;
      pushes.find((p) => p.leg === B && p.seq === 120)!.atMs = markerA.atMs;
      const bench = new Bench();
      bench.run(pushes).flush();
      expect(bench.slotOf(B, 120)).toBe(bench.slotOf(A, 120));
      expect(bench.silentSlots(B)).toBeGreaterThanOrEqual(49);
      expect(bench.silentSlots(B)).toBeLessThanOrEqual(51);
      expect(bench.silentSlots(A)).toBe(0);
    });
  }

  it('puts the marker in an adjacent slot at most when the legs are half a frame apart', () => {
    const pushes = gapPlan(10, 0);
    const bench = new Bench();
    bench.run(pushes).flush();
    // A's frame 120 and B's (10 ms later) carry a tone that started between them.
    expect(Math.abs(bench.slotOf(B, 120) - bench.slotOf(A, 120))).toBeLessThanOrEqual(1);
    expect(bench.silentSlots(B)).toBeGreaterThanOrEqual(50);
    expect(bench.silentSlots(B)).toBeLessThanOrEqual(51);
    expect(bench.aligner.stats.droppedLate).toEqual([0, 0]);
  });

  for (const lost of [1, 3]) {
    it(`turns ${lost} lost frame(s) of B into as many slots of silence, not a shift`, () => {
      const rng = xorshift32(0x3500 + lost);
      const bench = new Bench();
      bench.run([
        ...steady(A, { count: 200, jitterMs: 3, rng }),
        ...steady(B, { count: 200, startMs: 1006, jitterMs: 3, rng }).filter((push) => push.seq < 100 || push.seq >= 100 + lost),
      ]);
      bench.flush();
      expect(bench.slots).toEqual(Array.from({ length: 200 }, (_, i) => [i, i >= 100 && i < 100 + lost ? undefined : i]));
      expect(bench.aligner.stats.resyncs).toEqual([0, 1]);
    });
  }

  it('sends a lone leg out within maxWaitMs of arrival, paired with silence', () => {
    const bench = new Bench();
    bench.run(steady(A, { count: 100, jitterMs: 3 }), () => bench.expectNothingOverdue(A));
    expect(bench.slots.length).toBeGreaterThanOrEqual(90);
    bench.flush();
    expect(bench.slots).toEqual(Array.from({ length: 100 }, (_, i) => [i, undefined]));
  });

  it('lines up a leg B that starts 300 ms after A with the A frame of the same moment', () => {
    const bench = new Bench();
    bench.run([...steady(A, { count: 100 }), ...steady(B, { count: 100 }).filter((push) => push.seq >= 15)], () =>
      bench.expectNothingOverdue(A),
    );
    bench.flush();
    expect(bench.slots).toEqual(Array.from({ length: 100 }, (_, i) => [i, i < 15 ? undefined : i]));
    expect(bench.aligner.stats.droppedLate).toEqual([0, 0]);
    expect(bench.aligner.stats.resyncs).toEqual([0, 0]);
  });

  it('emits the silence of a gap on both legs once one of them resumes', () => {
    const bench = new Bench();
    bench.run([
      ...steady(A, { count: 150 }).filter((push) => push.seq < 50 || push.seq >= 100),
      ...steady(B, { count: 150, startMs: 1003 }).filter((push) => push.seq < 50 || push.seq >= 100),
    ]);
    bench.flush();
    expect(bench.slots).toEqual(Array.from({ length: 150 }, (_, i) => (i >= 50 && i < 100 ? [undefined, undefined] : [i, i])));
  });

  it('emits 10 s of silence on both legs, without holding more, when both come back after 10 s', () => {
    const bench = new Bench();
    const afterGap = (push: Push) => push.seq < 50 || push.seq >= 550;
    bench.run([...steady(A, { count: 600 }).filter(afterGap), ...steady(B, { count: 600, startMs: 1003 }).filter(afterGap)], () =>
      expect(bench.aligner.pendingFrames).toBeLessThanOrEqual(HELD_BOUND(MAX_AHEAD_SLOTS, MAX_WAIT_MS)),
    );
    bench.flush();
    expect(bench.slots).toEqual(Array.from({ length: 600 }, (_, i) => (i >= 50 && i < 550 ? [undefined, undefined] : [i, i])));
  });
});

describe('FrameAligner: late frames and bursts', () => {
  /** A and B steady for 200 frames; B's frames 100..100+held-1 are stuck until B's next frame is due, then come at once. */
  function stallPlan(held: number, bPhaseMs: number, jitterMs: number): Push[] {
    const rng = xorshift32(0x4000 + held);
    const b = steady(B, { count: 200, startMs: 1000 + bPhaseMs, jitterMs, rng });
    const releaseMs = b[100 + held]!.atMs;
    for (const push of b) if (push.seq >= 100 && push.seq < 100 + held) push.atMs = releaseMs;
    return [...steady(A, { count: 200, jitterMs, rng }), ...b];
  }

  for (const [bPhaseMs, jitterMs] of [
    [0, 0],
    [7, 3],
    [13, 3],
  ] as const) {
    it(`places a burst after a 200 ms stall in the frames' own slots, dropping only those already sent (phase ${bPhaseMs}, jitter ${jitterMs})`, () => {
      const bench = new Bench();
      bench.run(stallPlan(10, bPhaseMs, jitterMs), () => bench.expectNothingOverdue(A));
      bench.flush();
      const { droppedLate, silenceSlots, resyncs, droppedAhead } = bench.aligner.stats;
      // Frames older than maxWaitMs are late; the rest of the burst still finds its slot.
      expect(droppedLate[1]).toBeGreaterThanOrEqual(4);
      expect(droppedLate[1]).toBeLessThanOrEqual(7);
      expect(bench.emitted(B).filter((seq) => seq >= 100 && seq < 110).length).toBe(10 - droppedLate[1]);
      expect(silenceSlots).toEqual([0, droppedLate[1]]);
      expect(droppedAhead).toEqual([0, 0]);
      expect(resyncs).toEqual([0, 0]);
      // Nothing moved: every frame of B is in the slot of A's frame of the same number.
      for (const seq of bench.emitted(B)) expect(bench.slotOf(B, seq)).toBe(bench.slotOf(A, seq));
    });
  }

  it('loses nothing when a stall is shorter than maxWaitMs', () => {
    const bench = new Bench();
    bench.run(stallPlan(3, 5, 3)).flush();
    expectNoLossOrSilence(bench);
    expectPairedByIndex(bench, 200);
  });

  for (const order of ['interleaved', 'A first'] as const) {
    it(`loses nothing when both legs stall 200 ms together and deliver their backlog at once (${order})`, () => {
      // Frames 100..109 of both legs come just before A's frame 110.
      const backlog = (leg: Leg) =>
        steady(leg, { count: 200, startMs: leg === A ? 1000 : 1006 }).map((push) =>
          push.seq >= 100 && push.seq < 110 ? { ...push, atMs: 3199 } : push,
        );
      const [a, b] = [backlog(A), backlog(B)];
      const pushes = order === 'A first' ? [...a, ...b] : a.flatMap((push, i) => [push, b[i]!]);
      const bench = new Bench();
      bench.run(pushes).flush();
      expectNoLossOrSilence(bench);
      expectPairedByIndex(bench, 200);
    });
  }

  it('drops a lone frame that comes after its slot was sent, without shifting what follows', () => {
    // B's frame 100 is 150 ms late; B's frames behind it are queued and come with it.
    const b = steady(B, { count: 200, startMs: 1004 });
    const releaseMs = b[100]!.atMs + 150;
    for (const push of b) if (push.seq >= 100 && push.atMs < releaseMs) push.atMs = releaseMs;
    const bench = new Bench();
    bench.run([...steady(A, { count: 200 }), ...b]).flush();
    expect(bench.aligner.stats.droppedLate[1]).toBeGreaterThanOrEqual(2);
    for (const seq of bench.emitted(B)) expect(bench.slotOf(B, seq)).toBe(bench.slotOf(A, seq));
    expect(bench.aligner.stats.resyncs).toEqual([0, 0]);
  });
});

describe('FrameAligner: transports that count their losses', () => {
  /** As a transport that counts its losses says it: nothing before a leg's first frame, then the frames missing since the last. */
  function counted(pushes: Push[]): Push[] {
    const last: Partial<Record<Leg, number>> = {};
    return pushes.map((push) => {
      const before = last[push.leg];
      last[push.leg] = push.seq;
      return before === undefined ? push : { ...push, lostBefore: push.seq - before - 1 };
    });
  }

  /** B's latency steps up by `stepMs` for 2 s, then back, again and again (TCP under load): nothing lost, nothing reordered. */
  function steppingLatency(stepMs: number, count: number): Push[] {
    let lastMs = -Infinity;
    return steady(B, { count, startMs: 1006 }).map((push) => {
      lastMs = Math.max(lastMs, push.atMs + (Math.floor(push.seq / 100) % 2 === 1 ? stepMs : 0));
      return { ...push, atMs: lastMs };
    });
  }

  // Up to what the wait bridges (B's 6 ms of phase included).
  for (const stepMs of [15, 25, 45, 80]) {
    it(`keeps the stream as long as the call, each pair exact, when B's latency steps up by ${stepMs} ms and back, fifteen times, with nothing lost`, () => {
      const bench = new Bench();
      bench.run(counted([...steady(A, { count: 3000 }), ...steppingLatency(stepMs, 3000)])).flush();
      expectNoLossOrSilence(bench);
      expectPairedByIndex(bench, 3000);
    });
  }

  it('without the count, takes each step for lost frames: silence the leg never had, and a stream longer than the call', () => {
    const bench = new Bench();
    bench.run([...steady(A, { count: 3000 }), ...steppingLatency(15, 3000)]).flush();
    expect(bench.slots.length).toBeGreaterThan(3000);
    expect(bench.aligner.stats.silenceSlots[1]).toBeGreaterThan(0);
  });

  it("keeps the counted lost frames' slots, silent, however the next frame's arrival jitters", () => {
    for (const earlyMs of [-15, 0, 9, 15]) {
      const b = steady(B, { count: 300, startMs: 1004 })
        .filter((push) => push.seq < 100 || push.seq > 102)
        .map((push) => (push.seq === 103 ? { ...push, atMs: push.atMs - earlyMs } : push));
      const bench = new Bench();
      bench.run(counted([...steady(A, { count: 300 }), ...b])).flush();
      expect(bench.slots.length, `${earlyMs} ms early`).toBe(300);
      for (const seq of bench.emitted(B)) expect(bench.slotOf(B, seq), `B ${seq}, ${earlyMs} ms early`).toBe(bench.slotOf(A, seq));
      expect(bench.aligner.stats.silenceSlots).toEqual([0, 3]);
    }
  });

  it("keeps the counted lost frames' slots in a burst after a stall, too", () => {
    // B's frames 100..109 come at once 120 ms late, 104 and 105 lost on the way.
    const b = steady(B, { count: 300, startMs: 1004 })
      .filter((push) => push.seq !== 104 && push.seq !== 105)
      .map((push) => (push.seq >= 100 && push.seq < 110 ? { ...push, atMs: 1004 + 109 * FRAME_MS } : push));
    const bench = new Bench();
    bench.run(counted([...steady(A, { count: 300 }), ...b])).flush();
    for (const seq of bench.emitted(B)) expect(bench.slotOf(B, seq), `B ${seq}`).toBe(bench.slotOf(A, seq));
    expect(bench.slots.length).toBe(300);
  });

  it('does not trust a count beyond maxAheadSlots (a sender that started again): the frame is placed by its time', () => {
    const pushes = counted([...steady(A, { count: 300 }), ...steady(B, { count: 300, startMs: 1004 })]).map((push) =>
      push.leg === B && push.seq === 150 ? { ...push, lostBefore: 30_000 } : push,
    );
    const bench = new Bench();
    bench.run(pushes).flush();
    expectNoLossOrSilence(bench);
    expectPairedByIndex(bench, 300);
  });

  it('still brings counted legs together when their phases drift more than maxWaitMs apart (clocks 2,000 ppm apart)', () => {
    const bench = new Bench();
    bench.run(counted([...steady(A, { count: 3000 }), ...steady(B, { count: 3000, startMs: 1004, periodMs: FRAME_MS * 1.002 })])).flush();
    expect(bench.aligner.stats.resyncs[1]).toBeGreaterThanOrEqual(1);
    expect(bench.emitted(B)).toHaveLength(3000);
    for (const [a, b] of bench.slots) {
      if (a === undefined || b === undefined) continue;
      expect(Math.abs(bench.arrivedMs[B].get(b)! - bench.arrivedMs[A].get(a)!), `slot of A ${a}`).toBeLessThanOrEqual(
        MAX_WAIT_MS + FRAME_MS,
      );
    }
  });
});

describe('FrameAligner: long gaps on both legs', () => {
  it('after ten minutes with neither leg, emits at most maxGapFillMs (30 s) of silence, not ten minutes of it at once', () => {
    let nowMs = 0;
    let emitted = 0;
    const aligner = new FrameAligner({ frameBytes: 640, now: () => nowMs, onFrame: () => emitted++ });
    const both = (count: number) => {
      for (let i = 0; i < count; i++) {
        aligner.push(0, Buffer.alloc(640));
        aligner.push(1, Buffer.alloc(640));
        nowMs += 20;
      }
    };
    both(50);
    nowMs += 10 * 60 * 1000;
    const before = emitted;
    aligner.push(0, Buffer.alloc(640));
    // Not the gap's 30,000 slots at once: at most 30 s (1,500 slots) of silence.
    expect(emitted - before).toBeLessThanOrEqual(1500 + 10);
    both(50);
    aligner.flush();
    expect(aligner.stats.skippedSlots).toBeGreaterThan(28_000);
    expect(emitted).toBeLessThan(50 + 50 + 1500 + 70);
  });

  it('a short gap on both legs is filled with silence in full, keeping the legs aligned', () => {
    let nowMs = 0;
    const slots: [number, number][] = [];
    const aligner = new FrameAligner({ frameBytes: 640, now: () => nowMs, onFrame: (l, r) => slots.push([l[0]!, r[0]!]) });
    const both = (count: number, tag: number) => {
      for (let i = 0; i < count; i++) {
        aligner.push(0, Buffer.alloc(640, tag));
        aligner.push(1, Buffer.alloc(640, tag));
        nowMs += 20;
      }
    };
    both(50, 1);
    nowMs += 500;
    both(50, 2);
    aligner.flush();
    expect(aligner.stats.skippedSlots).toBe(0);
    expect(slots.length).toBeGreaterThanOrEqual(100 + 24);
    expect(slots.every(([l, r]) => l === r)).toBe(true);
  });
});

describe('FrameAligner: bounded memory and bad input', () => {
  it('bounds a leg that sends far ahead, then realigns it once it is back at the normal pace', () => {
    const a = steady(A, { count: 300 });
    const b = steady(B, { count: 300, startMs: 1003 }).map((push) => (push.seq >= 100 ? { ...push, seq: push.seq + 1000 } : push));
    // At 3 s, B delivers 1000 frames at once.
    const flood = Array.from({ length: 1000 }, (_, i): Push => ({ atMs: 3000, leg: B, seq: 100 + i }));
    let mostHeld = 0;
    const bench = new Bench();
    bench.run([...a, ...b.filter((push) => push.seq < 100), ...flood, ...b.filter((push) => push.seq >= 1100)], () => {
      mostHeld = Math.max(mostHeld, bench.aligner.pendingFrames);
      bench.expectNothingOverdue(A);
    });
    bench.flush();
    expect(mostHeld).toBeLessThanOrEqual(HELD_BOUND(MAX_AHEAD_SLOTS, MAX_WAIT_MS));
    const { droppedAhead, droppedLate } = bench.aligner.stats;
    expect(droppedAhead[1]).toBeGreaterThan(900);
    expect([droppedAhead[0], droppedLate[0]]).toEqual([0, 0]);
    expectUnbroken(bench, A, 300);
    bench.expectAllAccountedFor();
    // Back at the normal pace, B's frames again pair with A's of the same moment.
    for (const [aSeq, bSeq] of bench.slots) {
      if (aSeq === undefined || bSeq === undefined || bSeq < 1110) continue;
      expect(Math.abs(bench.arrivedMs[B].get(bSeq)! - bench.arrivedMs[A].get(aSeq)!)).toBeLessThanOrEqual(FRAME_MS);
    }
  });

  it('counts and drops a frame of the wrong size', () => {
    const pushes: Push[] = [
      ...steady(A, { count: 20 }),
      ...steady(B, { count: 20, startMs: 1005 }),
      { atMs: 1101, leg: A, seq: 0, badBytes: 319 },
      { atMs: 1102, leg: B, seq: 0, badBytes: 640 },
    ];
    const bench = new Bench();
    bench.run(pushes).flush();
    expect(bench.aligner.stats.droppedBadSize).toEqual([1, 1]);
    expectPairedByIndex(bench, 20);
  });

  it('flush() emits what is still pending, gaps included, with silence for the absent leg', () => {
    const bench = new Bench();
    bench.run(steady(A, { count: 3 }));
    expect(bench.slots).toEqual([]);
    bench.flush();
    expect(bench.slots).toEqual([
      [0, undefined],
      [1, undefined],
      [2, undefined],
    ]);
    bench.run([...steady(A, { count: 5, first: 3, startMs: 1060 }), ...steady(B, { count: 5, first: 3, startMs: 1065 })]).flush();
    expect(bench.slots.slice(3)).toEqual([3, 4, 5, 6, 7].map((i) => [i, i]));
    bench.flush();
    expect(bench.slots.length).toBe(8);
  });

  it('rejects options it cannot work with', () => {
    const onFrame = () => undefined;
    expect(() => new FrameAligner({ frameBytes: 321, onFrame })).toThrow(RangeError);
    expect(() => new FrameAligner({ frameBytes: 0, onFrame })).toThrow(RangeError);
    expect(() => new FrameAligner({ frameBytes: 320, frameMs: 0, onFrame })).toThrow(RangeError);
    expect(() => new FrameAligner({ frameBytes: 320, maxWaitMs: 30, onFrame })).toThrow(RangeError);
    expect(() => new FrameAligner({ frameBytes: 320, maxAheadSlots: 0, onFrame })).toThrow(RangeError);
  });
});

describe('FrameAligner: randomized', () => {
  it('never loses steady legs with random phases, jitter up to ±4 ms and a common drift', () => {
    for (let run = 0; run < 20; run++) {
      const rng = xorshift32(0x5000 + run);
      const phaseMs = rng() * 17;
      const periodMs = FRAME_MS * (1 + (rng() * 2 - 1) * 300e-6);
      const jitterMs = rng() * 4;
      const bench = new Bench();
      bench.run([
        ...steady(A, { count: 1000, periodMs, jitterMs, rng }),
        ...steady(B, { count: 1000, startMs: 1000 + phaseMs, periodMs, jitterMs, rng }),
      ]);
      bench.flush();
      expectNoLossOrSilence(bench);
      expectPairedByIndex(bench, 1000);
    }
  });

  it('keeps pairs within about a frame, and within half a frame after a gap longer than maxWaitMs, under random losses and gaps', () => {
    for (let run = 0; run < 20; run++) {
      const seed = 0x5800 + run;
      const rng = xorshift32(seed);
      const phaseMs = rng() * 17;
      const lost = (leg: Leg) => {
        // Isolated lost frames, and gaps of 0.2 to 2 s, at random on each leg.
        const gone = new Set<number>();
        for (let seq = 20; seq < 1000; seq++) {
          const r = rng();
          if (r < 0.01) gone.add(seq);
          else if (r < 0.013) for (let end = seq + 10 + Math.floor(rng() * 90); seq < end; seq++) gone.add(seq);
        }
        return { leg, gone };
      };
      const legs = [lost(A), lost(B)];
      const bench = new Bench();
      bench.run(
        legs.flatMap(({ leg, gone }) =>
          steady(leg, { count: 1000, startMs: 1000 + (leg === B ? phaseMs : 0), jitterMs: 3, rng }).filter((push) => !gone.has(push.seq)),
        ),
      );
      bench.flush();
      const context = `seed 0x${seed.toString(16)}, phase ${phaseMs.toFixed(1)} ms`;
      expect(bench.aligner.stats.droppedLate, context).toEqual([0, 0]);
      expect(bench.aligner.stats.droppedAhead, context).toEqual([0, 0]);
      // The first frame after 8 or more lost ones (160 ms, more than maxWaitMs) goes by the other leg's timeline.
      const firstAfterGap = legs.map(
        ({ gone }) => new Set([...gone].filter((seq) => gone.has(seq - 7) && !gone.has(seq + 1)).map((seq) => seq + 1)),
      );
      for (const [a, b] of bench.slots) {
        if (a === undefined || b === undefined) continue;
        const apartMs = Math.abs(bench.arrivedMs[B].get(b)! - bench.arrivedMs[A].get(a)!);
        // The phase (below 17 ms) plus ±3 ms of jitter on each leg, and a little tracking error.
        expect(apartMs, `${context}: A ${a} with B ${b}`).toBeLessThanOrEqual(FRAME_MS + 8);
        if (firstAfterGap[0]!.has(a) || firstAfterGap[1]!.has(b))
          expect(apartMs, `${context}: A ${a} with B ${b} after a gap`).toBeLessThanOrEqual(FRAME_MS / 2 + 8);
      }
    }
  });

  /** One leg's pushes with random drops, gaps, stalls, floods, jitter and frames of the wrong size. */
  function chaoticLeg(leg: Leg, rng: Rng, pushCount: number): Push[] {
    const pushes: Push[] = [];
    const periodMs = FRAME_MS * (1 + (rng() * 2 - 1) * 1e-3);
    const jitterMs = rng() < 0.5 ? rng() * 5 : rng() * 60;
    let nominalMs = 1000 + rng() * FRAME_MS + (rng() < 0.3 ? rng() * 500 : 0);
    let lastMs = 1000;
    let heldUntilMs = -Infinity;
    let seq = 0;
    while (pushes.length < pushCount) {
      const r = rng();
      if (r < 0.005)
        nominalMs += rng() * 2000; // a gap: nothing sent
      else if (r < 0.015)
        heldUntilMs = nominalMs + rng() * 400; // a stall: the next frames come at once
      else if (r < 0.018) {
        const flood = 1 + Math.floor(rng() * 150);
        for (let i = 0; i < flood; i++) pushes.push({ atMs: lastMs, leg, seq: seq++ });
      } else if (r < 0.023) {
        const badBytes = Math.floor(rng() * 700);
        pushes.push({ atMs: lastMs, leg, seq: 0, badBytes: badBytes === FRAME_BYTES ? badBytes + 2 : badBytes });
      } else if (r < 0.05) nominalMs += periodMs; // one lost frame
      lastMs = Math.max(lastMs, heldUntilMs, nominalMs + rng() * jitterMs);
      pushes.push({ atMs: lastMs, leg, seq: seq++ });
      nominalMs += periodMs;
    }
    return pushes;
  }

  it('keeps its invariants under random gaps, stalls, floods, jitter and bad frames', () => {
    for (let run = 0; run < 24; run++) {
      const seed = 0x6000 + run;
      const rng = xorshift32(seed);
      const maxWaitMs = 40 + Math.floor(rng() * 160);
      const maxAheadSlots = 1 + Math.floor(rng() * 60);
      const bound = HELD_BOUND(maxAheadSlots, maxWaitMs);
      const bench = new Bench({ maxWaitMs, maxAheadSlots });
      const pushes = [...chaoticLeg(A, rng, 1500), ...chaoticLeg(B, rng, 1500)];
      const badSizes: [number, number] = [0, 0];
      for (const push of pushes) if (push.badBytes !== undefined) badSizes[push.leg]++;
      try {
        bench.run(pushes, () => {
          expect(bench.aligner.pendingFrames).toBeLessThanOrEqual(bound);
          bench.expectAllAccountedFor();
        });
        bench.flush();
        bench.expectAllAccountedFor();
        const { slots, silenceSlots, droppedBadSize } = bench.aligner.stats;
        expect(droppedBadSize).toEqual(badSizes);
        expect(bench.emitted(A).length + silenceSlots[0]).toBe(slots);
        expect(bench.emitted(B).length + silenceSlots[1]).toBe(slots);
      } catch (error) {
        throw new Error(`seed 0x${seed.toString(16)} (maxWaitMs ${maxWaitMs}, maxAheadSlots ${maxAheadSlots}): ${String(error)}`, {
          cause: error,
        });
      }
    }
  }, 30_000);
});
