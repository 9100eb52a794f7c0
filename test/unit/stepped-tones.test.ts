/**
 * The stepped-tone check the outage tests rely on: it passes a complete,
 * ordered signal and fails one with a single frame lost, repeated or swapped.
 */
import { describe, expect, it } from 'vitest';
import { decodeUlaw } from '../../app/media/g711.js';
import { CALLEE_STEPS_HZ, CALLER_STEPS_HZ, checkJoints, checkSteps, JOINT_FRAMES, steppedToneUlaw } from '../support/stepped-tones.js';

const pcm = decodeUlaw(steppedToneUlaw(CALLER_STEPS_HZ, 10));
// 20 ms frames at 8 kHz, starting 37 ms into the signal (a tap does not start on a step).
const frames = Array.from({ length: 400 }, (_, i) => pcm.subarray(592 + i * 320, 592 + (i + 1) * 320));

describe('stepped tones', () => {
  it('judges a complete, ordered signal right, in one connection or split into several at their positions', () => {
    const whole = checkSteps([{ positionMs: 0, frames }], 8000, CALLER_STEPS_HZ, CALLEE_STEPS_HZ);
    expect(whole.wrong).toEqual([]);
    expect(whole.judged).toBeGreaterThan(300);
    expect(whole.leaks).toBe(0);
    const split = checkSteps(
      [
        { positionMs: 0, frames: frames.slice(0, 150) },
        { positionMs: 3000, frames: frames.slice(150, 151) },
        { positionMs: 3020, frames: frames.slice(151) },
      ],
      8000,
      CALLER_STEPS_HZ,
    );
    expect(split.wrong).toEqual([]);
  });

  it.each([
    ['a frame lost', [...frames.slice(0, 200), ...frames.slice(201)]],
    ['a frame repeated', [...frames.slice(0, 200), frames[199]!, ...frames.slice(200)]],
    // Frames 209 and 211 sit on either side of a step boundary (at 4250 ms of the signal).
    ['two frames out of order', [...frames.slice(0, 209), frames[211]!, frames[210]!, frames[209]!, ...frames.slice(212)]],
  ])('finds %s', (_what, damaged) => {
    expect(checkSteps([{ positionMs: 0, frames: damaged }], 8000, CALLER_STEPS_HZ).wrong.length).toBeGreaterThan(0);
  });

  it('finds a connection that claims the wrong position', () => {
    const check = checkSteps(
      [
        { positionMs: 0, frames: frames.slice(0, 150) },
        { positionMs: 3020, frames: frames.slice(150) },
      ],
      8000,
      CALLER_STEPS_HZ,
    );
    expect(check.wrong.length).toBeGreaterThan(0);
  });

  it('counts the other party leaking in', () => {
    const other = decodeUlaw(steppedToneUlaw(CALLEE_STEPS_HZ, 10));
    const mixed = frames.map((frame, i) => {
      const out = Buffer.alloc(frame.length);
      for (let s = 0; s < frame.length; s += 2) out.writeInt16LE((frame.readInt16LE(s) + other.readInt16LE(i * 320 + s)) >> 1, s);
      return out;
    });
    expect(checkSteps([{ positionMs: 0, frames: mixed }], 8000, CALLER_STEPS_HZ, CALLEE_STEPS_HZ).leaks).toBeGreaterThan(100);
  });

  it('tells the other party leaking in (frames in a row) from one glitched frame', () => {
    const other = decodeUlaw(steppedToneUlaw(CALLEE_STEPS_HZ, 10));
    const mix = (i: number) => {
      const out = Buffer.alloc(320);
      for (let s = 0; s < 320; s += 2) out.writeInt16LE((frames[i]!.readInt16LE(s) + other.readInt16LE(i * 320 + s)) >> 1, s);
      return out;
    };
    const once = frames.map((frame, i) => (i === 100 ? mix(i) : frame));
    expect(checkSteps([{ positionMs: 0, frames: once }], 8000, CALLER_STEPS_HZ, CALLEE_STEPS_HZ)).toMatchObject({ leaks: 0, glitches: 1 });
    const twice = frames.map((frame, i) => (i === 100 || i === 101 ? mix(i) : frame));
    expect(checkSteps([{ positionMs: 0, frames: twice }], 8000, CALLER_STEPS_HZ, CALLEE_STEPS_HZ)).toMatchObject({ leaks: 2, glitches: 0 });
  });

  it('judges each joint between connections on its own: right when whole, wrong with a frame lost at it', () => {
    const whole = checkJoints(
      [
        { positionMs: 0, frames: frames.slice(0, 200) },
        { positionMs: 4000, frames: frames.slice(200) },
      ],
      8000,
      CALLER_STEPS_HZ,
    );
    expect(whole.map((check) => check.wrong)).toEqual([[]]);
    const lost = checkJoints(
      [
        { positionMs: 0, frames: frames.slice(0, 200) },
        // The service claims the next frame is at 4000 ms, but sends the one after it.
        { positionMs: 4000, frames: frames.slice(201) },
      ],
      8000,
      CALLER_STEPS_HZ,
    );
    expect(lost[0]!.wrong.length).toBeGreaterThan(0);
  });

  // A joint may fall anywhere against the steps: every one of a step's 12 frame phases.
  it.each(Array.from({ length: 13 }, (_, k) => 190 + k))(
    'tells a frame lost or repeated at a joint after frame %i, in its short window',
    (at) => {
      const atMs = at * 20;
      const joint = (after: readonly Buffer[]) =>
        checkJoints(
          [
            { positionMs: 0, frames: frames.slice(0, at) },
            { positionMs: atMs, frames: after },
          ],
          8000,
          CALLER_STEPS_HZ,
        )[0]!;
      expect(joint(frames.slice(at)).wrong).toEqual([]);
      expect(joint(frames.slice(at)).judged).toBeGreaterThanOrEqual(JOINT_FRAMES * 1.5);
      expect(joint(frames.slice(at)).slipped).toBe(false);
      for (const [what, after] of [
        ['lost', frames.slice(at + 1)],
        ['repeated', [frames[at - 1]!, ...frames.slice(at)]],
      ] as const) {
        expect(joint(after).wrong.length, what).toBeGreaterThan(0);
        expect(joint(after).slipped, what).toBe(false);
      }
    },
  );

  it('does not blame a joint for a slip of the audio itself: far from it, it is not seen; near it, it is reported as such', () => {
    const slipAt = (frame: number) => [...frames.slice(200, frame), ...frames.slice(frame + 1)];
    const joint = (after: readonly Buffer[]) =>
      checkJoints(
        [
          { positionMs: 0, frames: frames.slice(0, 200) },
          { positionMs: 4000, frames: after },
        ],
        8000,
        CALLER_STEPS_HZ,
      )[0]!;
    // Beyond twice the judged frames: not seen at all; the whole stream still shows it.
    expect(joint(slipAt(200 + 2 * JOINT_FRAMES + 10))).toMatchObject({ wrong: [], slipped: false });
    expect(
      checkSteps([{ positionMs: 4000, frames: slipAt(200 + 2 * JOINT_FRAMES + 10) }], 8000, CALLER_STEPS_HZ).wrong.length,
    ).toBeGreaterThan(0);
    // Inside the judged frames, at their far end, and just beyond them: a slip, not a fault of the joint.
    for (const at of [Math.floor(JOINT_FRAMES / 2), JOINT_FRAMES - 2, JOINT_FRAMES - 1, JOINT_FRAMES + 5]) {
      expect(joint(slipAt(200 + at)).slipped, `slip ${at} frames after the joint`).toBe(true);
    }
    // A frame lost at the joint is not a slip: each side fits, just not together.
    expect(joint(frames.slice(201))).toMatchObject({ slipped: false });
  });
});
