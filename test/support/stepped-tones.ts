/**
 * A signal that shows order and completeness: a party plays a stepped tone
 * (eight frequencies of 250 ms each, repeating), so every 20 ms of a stream
 * has an expected frequency given where it sits in the party's audio. A frame
 * lost, repeated or out of order shifts everything after it against the
 * steps, which the check finds at the next step boundary. A frame with a
 * boundary close to its middle is not judged; every other frame must carry the
 * step that fills most of it.
 */
import { encodeUlaw } from '../../app/media/g711.js';
import { tonePowerDb } from './tones.js';

export const STEP_MS = 250;
export const CALLER_STEPS_HZ = [400, 550, 700, 850, 1000, 1150, 1300, 1450] as const;
export const CALLEE_STEPS_HZ = [1700, 1850, 2000, 2150, 2300, 2450, 2600, 2750] as const;
const PERIOD_MS = STEP_MS * 8;

/** `seconds` (a whole number of periods) of the stepped tone as raw µ-law 8 kHz, for SIPp. */
export function steppedToneUlaw(stepsHz: readonly number[], seconds: number): Buffer {
  const rate = 8000;
  const periods = Math.ceil((seconds * 1000) / PERIOD_MS);
  const samplesPerStep = (rate * STEP_MS) / 1000;
  const pcm = Buffer.alloc(periods * stepsHz.length * samplesPerStep * 2);
  let phase = 0;
  let offset = 0;
  for (let period = 0; period < periods; period++) {
    for (const hz of stepsHz) {
      for (let i = 0; i < samplesPerStep; i++) {
        pcm.writeInt16LE(Math.round(Math.sin(phase) * 12000), offset);
        offset += 2;
        phase += (2 * Math.PI * hz) / rate;
      }
    }
  }
  return encodeUlaw(pcm);
}

/** Which step a frame carries (the loudest of the set), how loud it is, and by how many dB it beats the next. */
export function detectStep(
  frame: Buffer,
  sampleRate: number,
  stepsHz: readonly number[],
): { step: number; powerDb: number; marginDb: number } {
  const powers = stepsHz.map((hz) => tonePowerDb(frame, sampleRate, hz));
  const sorted = [...powers].sort((a, b) => b - a);
  return { step: powers.indexOf(sorted[0]!), powerDb: sorted[0]!, marginDb: sorted[0]! - sorted[1]! };
}

/** Below this a frame is silence (before the party's audio starts, after it ends): not judged. */
const SILENCE_DB = -45;
/**
 * A frame whose middle is this close to a step boundary holds both steps about equally: not
 * judged. Any other frame must carry the step that fills more of it, so a boundary pins the
 * offset to within a few ms and a frame lost or repeated anywhere shows at the next one.
 */
const UNCLEAR_MS = 4;
/** The first frames of a stream carry Asterisk's resampler settling in: not judged. */
const SETTLING_MS = 100;

export interface PositionedFrames {
  /** Where the first frame sits in the party's audio, ms. */
  positionMs: number;
  frames: readonly Buffer[];
}

export interface StepCheck {
  offsetMs: number;
  judged: number;
  wrong: { connection: number; index: number; positionMs: number; expected: number; got: number }[];
  /**
   * Judged frames in which one of `otherHz` came within 20 dB of the frame's own step (a 20 ms
   * frame leaks about 25 dB into neighbours 250 Hz away), next to another such frame: the
   * other party plays each step for 250 ms, so its audio mixed in spans frames.
   */
  leaks: number;
  /** Such frames alone between clean ones: a glitch of the frame itself (a loaded snoop slipping samples), not the other party. */
  glitches: number;
}

/**
 * Fits where the steps start (from the first connection's frames) and judges every frame of
 * every connection at its position: the frames are complete and in order exactly when none is wrong.
 */
export function checkSteps(
  connections: readonly PositionedFrames[],
  sampleRate: number,
  stepsHz: readonly number[],
  otherHz: readonly number[] = [],
): StepCheck {
  const frameMs = 20;
  const detections = connections.map((c) => c.frames.map((frame) => detectStep(frame, sampleRate, stepsHz)));
  const detected = detections.map((list) => list.map((d) => (d.powerDb < SILENCE_DB ? -1 : d.step)));
  // How far a frame's middle is from the nearest step boundary: under half a frame, the
  // boundary is inside the frame, and the step that fills more of it is the louder.
  const fromBoundary = (positionMs: number, offsetMs: number) => {
    const middle = positionMs + offsetMs + frameMs / 2;
    return Math.abs(middle - Math.round(middle / STEP_MS) * STEP_MS);
  };
  const straddles = (positionMs: number, offsetMs: number) => fromBoundary(positionMs, offsetMs) < frameMs / 2;
  const unclear = (positionMs: number, offsetMs: number) => fromBoundary(positionMs, offsetMs) < UNCLEAR_MS;
  const expected = (positionMs: number, offsetMs: number) => Math.floor(((positionMs + offsetMs + frameMs / 2) % PERIOD_MS) / STEP_MS);
  // The offset that explains the most frames (a frame out of place shifts all after it, so
  // a damaged stream leaves many frames unexplained whatever the offset).
  const all = connections.flatMap((connection, c) =>
    detected[c]!.map((step, i) => ({ step, positionMs: connection.positionMs + i * frameMs })),
  );
  const sample = all.filter(({ step, positionMs }) => step >= 0 && positionMs >= SETTLING_MS);
  const scores = Array.from({ length: PERIOD_MS }, (_, offsetMs) => {
    let score = 0;
    for (const { step, positionMs } of sample) if (!unclear(positionMs, offsetMs) && expected(positionMs, offsetMs) === step) score++;
    return score;
  });
  // Every offset of a plateau explains the judged frames alike; its middle keeps the frames
  // next to each step boundary clear of it (an offset at the plateau's edge would not).
  const top = Math.max(...scores);
  let bestStart = scores.indexOf(top);
  let bestLength = 0;
  for (let start = 0; start < PERIOD_MS; start++) {
    if (scores[start] !== top || (start > 0 && scores[start - 1] === top)) continue;
    let length = 0;
    while (length < PERIOD_MS && scores[(start + length) % PERIOD_MS] === top) length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  const best = { offsetMs: (bestStart + Math.floor(bestLength / 2)) % PERIOD_MS };
  const wrong: StepCheck['wrong'] = [];
  let judged = 0;
  const leaking: boolean[][] = connections.map((connection) => connection.frames.map(() => false));
  connections.forEach((connection, c) => {
    detected[c]!.forEach((step, i) => {
      const positionMs = connection.positionMs + i * frameMs;
      if (step < 0 || positionMs < SETTLING_MS || unclear(positionMs, best.offsetMs)) return;
      judged++;
      const want = expected(positionMs, best.offsetMs);
      if (want !== step) wrong.push({ connection: c, index: i, positionMs, expected: want, got: step });
      // A frame holding two of the party's steps is too weak in either to judge a leak by.
      if (straddles(positionMs, best.offsetMs)) return;
      const frame = connection.frames[i]!;
      const loudestOther = Math.max(...otherHz.map((hz) => tonePowerDb(frame, sampleRate, hz)));
      if (otherHz.length > 0 && detections[c]![i]!.powerDb - loudestOther < 20) leaking[c]![i] = true;
    });
  });
  let leaks = 0;
  let glitches = 0;
  for (const row of leaking) {
    row.forEach((leak, i) => {
      if (!leak) return;
      if (row[i - 1] === true || row[i + 1] === true) leaks++;
      else glitches++;
    });
  }
  return { offsetMs: best.offsetMs, judged, wrong, leaks, glitches };
}

/** Frames judged on each side of a joint (see checkJoints): two step boundaries at least. */
export const JOINT_FRAMES = 25;

export interface JointCheck extends StepCheck {
  /**
   * One side of the joint, over twice the judged frames, does not fit one offset by itself:
   * the audio slipped there (Asterisk's snoop under load), not at the joint, and a slip near
   * the judged frames' far end can look like a fault at the joint, so it is not judged.
   */
  slipped: boolean;
}

/**
 * The steps across each joint between connections (`frames` frames before and after it),
 * each joint fitted on its own. Where a stream is joined after an outage is where frames
 * could be lost, repeated or reordered by the buffering; a joint whose two sides each fit
 * an offset, but not the same one, shows it.
 *
 * Elsewhere, Asterisk's snoop may itself slip a frame now and then when the machine is
 * loaded: no fault of the stream. The window is therefore short (500 ms a side, enough for
 * two step boundaries, which pin a side's offset to within a frame at any phase), and a
 * joint with a slip near it (within twice that, where the judged frames alone cannot
 * place it) is reported as `slipped` rather than wrong.
 */
export function checkJoints(
  connections: readonly PositionedFrames[],
  sampleRate: number,
  stepsHz: readonly number[],
  frames = JOINT_FRAMES,
): JointCheck[] {
  const checks: JointCheck[] = [];
  for (let k = 1; k < connections.length; k++) {
    const before = connections[k - 1]!;
    const after = connections[k]!;
    const sides = (count: number) => {
      const tail = before.frames.slice(-count);
      return [
        { positionMs: before.positionMs + (before.frames.length - tail.length) * 20, frames: tail },
        { positionMs: after.positionMs, frames: after.frames.slice(0, count) },
      ];
    };
    const slipped = sides(2 * frames).some((side) => checkSteps([side], sampleRate, stepsHz).wrong.length > 0);
    checks.push({ ...checkSteps(sides(frames), sampleRate, stepsHz), slipped });
  }
  return checks;
}
