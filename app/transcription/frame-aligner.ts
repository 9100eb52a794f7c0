/**
 * Pairs the two legs' 20 ms frames, one pair per output slot, for the streams
 * that carry both parties (stereo: A left, B right; mixed: A+B). Each leg comes
 * through its own pipeline on its own 20 ms clock, so the frames of one moment
 * arrive up to a frame apart, with jitter, and sometimes not at all. Pairing
 * them by count would let one lost packet shift a party for the rest of the
 * call; here they are paired by arrival time, and a leg's missing or late
 * frames become silence. No timers: the clock is injected and read only in
 * push(), where everything that is due is emitted, and flush().
 *
 * Timelines. Slot s is the call's frame s. Each leg has a timeline: `next`, the
 * slot of its next frame, and `phase`, when its frame for slot 0 would have
 * arrived on our clock, so its frame for slot s is expected at phase + s·frameMs.
 * Frames go to consecutive slots, so jitter never moves a frame. The phase
 * follows the leg's arrivals (their mean over a timeline's first 8 frames, then
 * 1/16 of each arrival's error, at most 1 ms a frame): that smooths jitter and
 * follows the drift between Asterisk's clock and ours (500 ppm is 0.01 ms a
 * frame). A frame under half a frame after its leg's previous one is part of a
 * burst, a queue being delivered: it teaches the timeline nothing.
 *
 * Where a leg's frames start. A leg's first frame pairs with the other leg's
 * first frame if that came at most 1.25 frames earlier (the taps start
 * together, whatever their phases). Otherwise it goes to the slot nearest its
 * arrival on the other leg's timeline (on its own if the other leg is quiet).
 *
 * Gaps. Where the transport counts its losses (push's lostBefore: an RTP
 * sequence gap, or 0 on TCP), the lost frames' slots stay silent and nothing
 * else is guessed: a late frame with none lost before it is only late, and
 * takes its slot while that is still pending. (Taken for one after lost
 * frames, each step up of a leg's latency gave it silence it never had, and
 * the stream more time than the call: the 1-hour AudioSocket and WebSocket
 * calls ran 0.16 % long.) Where it cannot say, a frame at the normal pace that
 * is late on its timeline by more than jitter explains (half a frame, or 4×
 * the leg's mean jitter) follows lost frames: the leg's timeline skips the
 * slots they would have had, which stay silent. Later than maxWaitMs, whatever
 * the count, the slot is gone and the leg may have restarted on another phase,
 * so its frame goes to the slot nearest its arrival on the other leg's
 * timeline: frames that arrive at the same moment on both legs share a slot,
 * or neighbouring ones when the legs' phases are about half a frame apart.
 * Either jump is tentative, decided by the leg's next frame: if that comes in
 * a burst, the late frame headed a backlog (the leg had stalled); if it comes
 * early on the new timeline, the late frame was jitter. Either way the jump is
 * undone and the frames take their slots in sequence; those whose slot has
 * already gone out are dropped as late. A late frame is never moved to a later
 * slot. A frame more than maxWaitMs early (the leg had sent ahead of time)
 * sets its leg back, dropping what it had queued ahead.
 *
 * Emission, in slot order. A slot goes out when both legs are past it, or when
 * one of its frames has waited maxWaitMs since arrival (since its expected time
 * if it came more than 3/4 frame early), or when a later slot goes out. A leg
 * with no frame in the slot contributes silence.
 *
 * Drift between the legs. Their phases are compared; when one leg's frames come
 * more than 1.5 frames after the other's, that leg moves to the nearest
 * pairing by taking slots of silence, never by dropping audio. Legs whose
 * frames are all counted since their timelines were set are paired by number,
 * which is exact: Asterisk's snoop sends a frame on every 20 ms tick of its
 * timer, silence when the party's audio is late, so a leg's frames keep its
 * time however late they reach us, and a rise in one leg's latency is not
 * drift. They move only when their phases are more than maxWaitMs apart.
 * (At 1.5 frames, a latency step up and back cost both legs its slots.)
 *
 * Long gaps. When both legs went quiet (a pause, taps being replaced) and one
 * comes back, the slots of the gap go out as silence, at once, so the stream
 * keeps the call's time; a gap of ten minutes would be 38 MB of it. At most
 * maxGapFillMs of silence stands for a gap in which neither leg had a frame;
 * the rest of it is skipped (counted).
 *
 * Memory. A frame more than maxAheadSlots ahead of its leg's timeline is
 * dropped, and held slots span at most maxAheadSlots + ⌈maxWaitMs/frameMs⌉ + 2
 * slots (a frame beyond pushes the oldest out early), so at most twice that
 * many frames are held.
 */
import { silence } from '../media/pcm-channels.js';

export interface FrameAlignerOptions {
  /** Bytes of one frame of one leg (320 at 8 kHz, 640 at 16 kHz); frames of another size are dropped. */
  frameBytes: number;
  /** Duration of one frame (default 20). */
  frameMs?: number;
  /** How long an output slot waits for a late leg before silence stands in for it (default 100; at least 2 frames). */
  maxWaitMs?: number;
  /** Most slots one leg may run ahead of the output before its frames are dropped (bounded memory; default 50). */
  maxAheadSlots?: number;
  /** Most silence emitted for a gap in which neither leg had a frame; the rest is skipped (default 30000). */
  maxGapFillMs?: number;
  /** Injectable clock in ms (default performance.now). */
  now?: () => number;
  /**
   * Called in slot order, exactly once per slot; an absent leg is silence. Both buffers are
   * frameBytes long. `firstArrivedMs`: when the earlier of the slot's frames arrived (on the
   * aligner's clock), undefined for a slot of silence only: what the alignment added to the
   * frame's journey is the time since.
   */
  onFrame(left: Buffer, right: Buffer, firstArrivedMs: number | undefined): void;
}

/** Counters, indexed [leg A, leg B] where there are two. */
export interface FrameAlignerStats {
  /** Slots emitted (calls of onFrame). */
  readonly slots: number;
  /** Emitted slots in which the leg had no frame. */
  readonly silenceSlots: readonly [number, number];
  /** Frames whose slot had already been emitted. */
  readonly droppedLate: readonly [number, number];
  /** Frames too far ahead of their leg's timeline, or queued ahead when it was set back. */
  readonly droppedAhead: readonly [number, number];
  /** Frames not frameBytes long. */
  readonly droppedBadSize: readonly [number, number];
  /** Times the leg's timeline was moved: after a gap, when it ran ahead, or to follow the other leg's drift. */
  readonly resyncs: readonly [number, number];
  /** Slots of a long gap with neither leg's audio that were skipped rather than sent as silence. */
  readonly skippedSlots: number;
}

type LegIndex = 0 | 1;

interface HeldFrame {
  readonly frame: Buffer;
  readonly arrivedMs: number;
  /** When this frame's slot goes out even without the other leg's frame. */
  readonly dueMs: number;
}

type Slot = [HeldFrame | undefined, HeldFrame | undefined];

/** A jump over a gap that the leg's next frame may still show to be a backlog or jitter. */
interface TentativeJump {
  readonly fromSlot: number;
  readonly toSlot: number;
  readonly atMs: number;
  readonly phaseMs: number;
  readonly pacedFrames: number;
}

class LegTimeline {
  /** Slot of the leg's next frame; undefined until its first frame. */
  next: number | undefined;
  /** When the leg's frame for slot 0 would arrive (valid once `next` is set). */
  phaseMs = 0;
  firstArrivalMs: number | undefined;
  firstSlot = 0;
  lastArrivalMs: number | undefined;
  /** Frames at the normal pace since the timeline was last set. */
  pacedFrames = 0;
  /** Every frame since the timeline was last set came with its transport's loss count: its slots are exact. */
  counted = true;
  /** Mean distance of paced arrivals from the timeline, over jitterSamples; it starts high, so a new leg's jitter is not taken for loss. */
  jitterMs: number;
  jitterSamples = 0;
  jump: TentativeJump | undefined;

  constructor(initialJitterMs: number) {
    this.jitterMs = initialJitterMs;
  }
}

/** Under this many frames after the leg's previous frame, a frame belongs to a burst. */
const BURST_FRAMES = 0.5;
/** A leg's first frame pairs with the other's first frame if that came at most this many frames earlier. */
const START_PAIR_FRAMES = 1.25;
/** The legs' phases may differ by this many frames before the later one moves. */
const SLIP_FRAMES = 1.5;
/** A frame later than this many frames, and than LOSS_JITTERS times the leg's mean jitter, follows lost frames. */
const LOSS_FRAMES = 0.5;
const LOSS_JITTERS = 4;
/** Weight of one arrival in the mean jitter, and the mean jitter assumed before any. */
const JITTER_GAIN = 1 / 16;
const INITIAL_JITTER_FRAMES = 0.5;
/** A jump no frame of its leg followed for this many frames is committed. */
const JUMP_TIMEOUT_FRAMES = 2;
/** A frame this many frames early waits from its expected time, not its arrival. */
const EARLY_FRAMES = 0.75;
/** Share of an arrival's distance from the timeline by which the phase moves, and the most it moves per frame. */
const TRACK_GAIN = 1 / 16;
const TRACK_MAX_STEP_FRAMES = 1 / 20;
/** Paced frames on both timelines before their phases are compared. */
const SETTLED_FRAMES = 8;

export class FrameAligner {
  readonly #frameBytes: number;
  readonly #frameMs: number;
  readonly #maxWaitMs: number;
  readonly #maxAheadSlots: number;
  readonly #windowSlots: number;
  readonly #maxGapFillSlots: number;
  readonly #now: () => number;
  readonly #onFrame: (left: Buffer, right: Buffer, firstArrivedMs: number | undefined) => void;
  readonly #legs: [LegTimeline, LegTimeline];
  readonly #slots = new Map<number, Slot>();
  /** The oldest slot not yet emitted. */
  #head = 0;
  #heldFrames = 0;
  readonly #stats = {
    slots: 0,
    silenceSlots: [0, 0] as [number, number],
    droppedLate: [0, 0] as [number, number],
    droppedAhead: [0, 0] as [number, number],
    droppedBadSize: [0, 0] as [number, number],
    resyncs: [0, 0] as [number, number],
    skippedSlots: 0,
  };

  constructor(options: FrameAlignerOptions) {
    const { frameBytes, frameMs = 20, maxWaitMs = 100, maxAheadSlots = 50, maxGapFillMs = 30_000 } = options;
    if (!Number.isInteger(frameBytes) || frameBytes <= 0 || frameBytes % 2 !== 0) {
      throw new RangeError(`frameBytes must be a positive even integer, not ${frameBytes}`);
    }
    if (!(frameMs > 0)) throw new RangeError(`frameMs must be positive, not ${frameMs}`);
    // The later leg's frame for a slot may come up to SLIP_FRAMES after the other's.
    if (!(maxWaitMs >= 2 * frameMs)) throw new RangeError(`maxWaitMs must be at least two frames (${2 * frameMs}), not ${maxWaitMs}`);
    if (!Number.isInteger(maxAheadSlots) || maxAheadSlots < 1)
      throw new RangeError(`maxAheadSlots must be a positive integer, not ${maxAheadSlots}`);
    this.#frameBytes = frameBytes;
    this.#frameMs = frameMs;
    this.#maxWaitMs = maxWaitMs;
    this.#maxAheadSlots = maxAheadSlots;
    this.#windowSlots = maxAheadSlots + Math.ceil(maxWaitMs / frameMs) + 2;
    if (!(maxGapFillMs >= 0)) throw new RangeError(`maxGapFillMs must not be negative, not ${maxGapFillMs}`);
    this.#maxGapFillSlots = Math.ceil(maxGapFillMs / frameMs);
    this.#legs = [new LegTimeline(INITIAL_JITTER_FRAMES * frameMs), new LegTimeline(INITIAL_JITTER_FRAMES * frameMs)];
    this.#now = options.now ?? (() => performance.now());
    this.#onFrame = options.onFrame;
  }

  get stats(): FrameAlignerStats {
    return this.#stats;
  }

  /** Frames held, waiting for their slot to go out (for monitoring and tests). */
  get pendingFrames(): number {
    return this.#heldFrames;
  }

  /**
   * A leg's frame. `lostBefore`: how many of the leg's frames the transport knows were lost
   * just before this one (an RTP sequence gap; 0 on a transport that loses nothing, TCP), or
   * undefined where it cannot say (a transport's first frame, a packet out of order).
   */
  push(leg: LegIndex, frame: Buffer, lostBefore?: number): void {
    const nowMs = this.#now();
    this.#commitStaleJumps(nowMs);
    // A count beyond what could be held is a sender that started again, not a loss to keep slots for.
    const counted = lostBefore !== undefined && lostBefore >= 0 && lostBefore <= this.#maxAheadSlots ? lostBefore : undefined;
    if (frame.length === this.#frameBytes) this.#place(leg, frame, nowMs, counted);
    else this.#stats.droppedBadSize[leg]++;
    this.#emitDue(nowMs);
  }

  /** Emits every slot still pending (at the end of the call). */
  flush(): void {
    this.#commitStaleJumps(Infinity);
    let last = -Infinity;
    for (const slot of this.#slots.keys()) last = Math.max(last, slot);
    while (this.#head <= last) this.#emitHead();
  }

  #place(leg: LegIndex, frame: Buffer, nowMs: number, lostBefore: number | undefined): void {
    const timeline = this.#legs[leg];
    const paced = timeline.lastArrivalMs === undefined || nowMs - timeline.lastArrivalMs >= BURST_FRAMES * this.#frameMs;
    if (timeline.jump !== undefined) {
      // In a burst, this frame shows a backlog; early on the new timeline, it shows the jump was jitter.
      const earlyMs = timeline.phaseMs + timeline.next! * this.#frameMs - nowMs;
      if (!paced || earlyMs > BURST_FRAMES * this.#frameMs) this.#undoJump(leg);
      else this.#commitJump(leg);
    }
    timeline.lastArrivalMs = nowMs;
    if (timeline.next === undefined) {
      timeline.firstArrivalMs = nowMs;
      timeline.firstSlot = this.#startSlot(leg, nowMs);
      this.#setTimeline(leg, timeline.firstSlot, frame, nowMs);
      return;
    }
    // Frames the transport counted as lost keep their slots, silent; the leg's clock is unchanged.
    if (lostBefore === undefined) timeline.counted = false;
    else if (lostBefore > 0) timeline.next += lostBefore;
    const lateMs = nowMs - (timeline.phaseMs + timeline.next * this.#frameMs);
    if (paced) {
      // After more than maxWaitMs the leg may have restarted on another phase: place it by the other leg.
      if (lateMs > this.#maxWaitMs || timeline.next < this.#head)
        return this.#resync(leg, frame, nowMs, this.#nearestSlot(leg, nowMs), true);
      // Lost frames the transport could not count: the leg's own clock went on. (A late frame
      // with none lost before it is only late, its slot still pending: taking it for one after
      // a loss would give the leg silence it never had, and the stream time the call never had.)
      if (lostBefore === undefined && lateMs > this.#lossThresholdMs(timeline))
        return this.#resync(leg, frame, nowMs, timeline.next + Math.round(lateMs / this.#frameMs), true);
      if (lateMs < -this.#maxWaitMs) return this.#resync(leg, frame, nowMs, this.#nearestSlot(leg, nowMs), false);
      timeline.jitterSamples++;
      timeline.jitterMs += (Math.abs(lateMs) - timeline.jitterMs) * Math.max(JITTER_GAIN, 1 / (timeline.jitterSamples + 1));
      this.#track(timeline, lateMs);
      timeline.pacedFrames++;
    }
    if (-lateMs > this.#maxAheadSlots * this.#frameMs) {
      this.#stats.droppedAhead[leg]++;
      return;
    }
    this.#hold(leg, timeline.next++, frame, nowMs);
    if (paced) this.#followDrift(nowMs);
  }

  /** Moves the leg's timeline so that this frame lands at `slot` (or the oldest pending one). */
  #resync(leg: LegIndex, frame: Buffer, nowMs: number, slot: number, tentative: boolean): void {
    const timeline = this.#legs[leg];
    const from = timeline.next!;
    const to = Math.max(slot, this.#head);
    if (to < from) this.#dropHeld(leg, to, from);
    if (to > from && tentative) {
      timeline.jump = { fromSlot: from, toSlot: to, atMs: nowMs, phaseMs: timeline.phaseMs, pacedFrames: timeline.pacedFrames };
    } else if (to !== from) {
      this.#stats.resyncs[leg]++;
    }
    this.#setTimeline(leg, to, frame, nowMs);
  }

  #setTimeline(leg: LegIndex, slot: number, frame: Buffer, nowMs: number): void {
    const timeline = this.#legs[leg];
    timeline.phaseMs = nowMs - slot * this.#frameMs;
    timeline.next = slot + 1;
    timeline.pacedFrames = 0;
    timeline.counted = true;
    this.#hold(leg, slot, frame, nowMs);
  }

  #undoJump(leg: LegIndex): void {
    const timeline = this.#legs[leg];
    const jump = timeline.jump!;
    timeline.jump = undefined;
    timeline.phaseMs = jump.phaseMs;
    timeline.pacedFrames = jump.pacedFrames;
    timeline.next = jump.fromSlot + 1;
    const held = this.#take(leg, jump.toSlot);
    if (held !== undefined) this.#hold(leg, jump.fromSlot, held.frame, held.arrivedMs);
  }

  #commitJump(leg: LegIndex): void {
    this.#legs[leg].jump = undefined;
    this.#stats.resyncs[leg]++;
  }

  /** A jump that no frame followed for JUMP_TIMEOUT_FRAMES stands: the leg went quiet again. */
  #commitStaleJumps(nowMs: number): void {
    for (const leg of [0, 1] as const) {
      const jump = this.#legs[leg].jump;
      if (jump !== undefined && nowMs - jump.atMs >= JUMP_TIMEOUT_FRAMES * this.#frameMs) this.#commitJump(leg);
    }
  }

  /** A leg's first frame: with the other leg's first frame if both started together, else by time. */
  #startSlot(leg: LegIndex, nowMs: number): number {
    const other = this.#legs[1 - leg]!;
    if (other.firstArrivalMs !== undefined && nowMs - other.firstArrivalMs <= START_PAIR_FRAMES * this.#frameMs) {
      return Math.max(other.firstSlot, this.#head);
    }
    return Math.max(this.#nearestSlot(leg, nowMs), this.#head);
  }

  /** The slot nearest `nowMs` on the other leg's timeline if it is steady, else on this leg's own. */
  #nearestSlot(leg: LegIndex, nowMs: number): number {
    const own = this.#legs[leg];
    const other = this.#legs[1 - leg]!;
    const reference = this.#isSteady(other, nowMs) ? other : own.next !== undefined ? own : other.next !== undefined ? other : undefined;
    return reference === undefined ? this.#head : Math.round((nowMs - reference.phaseMs) / this.#frameMs);
  }

  #isSteady(timeline: LegTimeline, nowMs: number): boolean {
    return (
      timeline.next !== undefined &&
      timeline.jump === undefined &&
      timeline.lastArrivalMs !== undefined &&
      nowMs - timeline.lastArrivalMs <= this.#maxWaitMs
    );
  }

  /** How late a frame must be to mean lost frames rather than jitter: half a frame, or more on a jittery leg. */
  #lossThresholdMs(timeline: LegTimeline): number {
    return Math.min(this.#maxWaitMs, Math.max(LOSS_FRAMES * this.#frameMs, LOSS_JITTERS * timeline.jitterMs));
  }

  /**
   * Moves the phase towards this arrival: over the first frames of a timeline to the mean of their arrivals (one
   * arrival set it), then a sixteenth of the way, at most TRACK_MAX_STEP_FRAMES.
   */
  #track(timeline: LegTimeline, lateMs: number): void {
    if (timeline.pacedFrames < SETTLED_FRAMES) {
      timeline.phaseMs += lateMs / (timeline.pacedFrames + 2);
      return;
    }
    const maxStepMs = TRACK_MAX_STEP_FRAMES * this.#frameMs;
    timeline.phaseMs += Math.max(-maxStepMs, Math.min(maxStepMs, lateMs * TRACK_GAIN));
  }

  /** When one leg's frames come more than SLIP_FRAMES after the other's, it takes silence to the nearest pairing. */
  #followDrift(nowMs: number): void {
    const [a, b] = this.#legs;
    if (!this.#isSteady(a, nowMs) || !this.#isSteady(b, nowMs) || a.pacedFrames < SETTLED_FRAMES || b.pacedFrames < SETTLED_FRAMES) return;
    const bLaterMs = b.phaseMs - a.phaseMs;
    // Counted legs are paired by their frames' numbers, exactly: one's latency rising is not
    // drift, and only a gap the wait cannot bridge moves them.
    const slipMs = a.counted && b.counted ? this.#maxWaitMs : SLIP_FRAMES * this.#frameMs;
    if (Math.abs(bLaterMs) <= slipMs) return;
    const leg = bLaterMs > 0 ? 1 : 0;
    const slots = Math.round(Math.abs(bLaterMs) / this.#frameMs);
    const later = this.#legs[leg];
    later.next! += slots;
    later.phaseMs -= slots * this.#frameMs;
    later.pacedFrames = 0;
    this.#stats.resyncs[leg]++;
  }

  #hold(leg: LegIndex, slot: number, frame: Buffer, arrivedMs: number): void {
    if (slot < this.#head) {
      this.#stats.droppedLate[leg]++;
      return;
    }
    this.#skipLongGap(slot);
    // The window is full: its oldest slots go out early rather than memory growing.
    while (slot >= this.#head + this.#windowSlots) this.#emitHead();
    const expectedMs = this.#legs[leg].phaseMs + slot * this.#frameMs;
    const dueMs = Math.max(arrivedMs, expectedMs - EARLY_FRAMES * this.#frameMs) + this.#maxWaitMs;
    let held = this.#slots.get(slot);
    if (held === undefined) {
      held = [undefined, undefined];
      this.#slots.set(slot, held);
    }
    held[leg] = { frame, arrivedMs, dueMs };
    this.#heldFrames++;
  }

  /**
   * Before a frame far beyond everything held (neither leg had audio for longer than
   * maxGapFillMs): what is held goes out, then the head moves on to maxGapFillMs before the
   * frame's slot, without emitting the slots in between.
   */
  #skipLongGap(slot: number): void {
    if (slot - this.#head <= this.#maxGapFillSlots + this.#windowSlots) return;
    let lastHeld = -Infinity;
    for (const held of this.#slots.keys()) lastHeld = Math.max(lastHeld, held);
    while (this.#head <= lastHeld) this.#emitHead();
    const newHead = slot - this.#maxGapFillSlots;
    if (newHead > this.#head) {
      this.#stats.skippedSlots += newHead - this.#head;
      this.#head = newHead;
    }
  }

  #take(leg: LegIndex, slot: number): HeldFrame | undefined {
    const held = this.#slots.get(slot);
    const frame = held?.[leg];
    if (held === undefined || frame === undefined) return undefined;
    held[leg] = undefined;
    if (held[1 - leg] === undefined) this.#slots.delete(slot);
    this.#heldFrames--;
    return frame;
  }

  /** Drops what the leg holds in [from, to): it had been queued ahead of its time. */
  #dropHeld(leg: LegIndex, from: number, to: number): void {
    for (let slot = Math.max(from, this.#head); slot < to; slot++) {
      if (this.#take(leg, slot) !== undefined) this.#stats.droppedAhead[leg]++;
    }
  }

  /** The lowest slot the leg may still fill: below it, the leg is done. */
  #floor(leg: LegIndex): number {
    const timeline = this.#legs[leg];
    return timeline.jump?.fromSlot ?? timeline.next ?? -Infinity;
  }

  #emitDue(nowMs: number): void {
    let dueThrough = -Infinity;
    for (const [slot, held] of this.#slots) {
      if (slot > dueThrough && ((held[0] !== undefined && held[0].dueMs <= nowMs) || (held[1] !== undefined && held[1].dueMs <= nowMs)))
        dueThrough = slot;
    }
    while (this.#head <= dueThrough || (this.#head < this.#floor(0) && this.#head < this.#floor(1))) this.#emitHead();
  }

  #emitHead(): void {
    const slot = this.#head++;
    const held = this.#slots.get(slot);
    this.#slots.delete(slot);
    const frames = [held?.[0]?.frame, held?.[1]?.frame];
    for (const leg of [0, 1] as const) {
      if (frames[leg] === undefined) this.#stats.silenceSlots[leg]++;
      else this.#heldFrames--;
    }
    this.#stats.slots++;
    const arrivals = [held?.[0]?.arrivedMs, held?.[1]?.arrivedMs].filter((ms): ms is number => ms !== undefined);
    this.#onFrame(
      frames[0] ?? silence(this.#frameBytes),
      frames[1] ?? silence(this.#frameBytes),
      arrivals.length === 0 ? undefined : Math.min(...arrivals),
    );
  }
}
