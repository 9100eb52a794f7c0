import { defineConfig } from 'vitest/config';

// Two layers: `unit` (pure code and real sockets on 127.0.0.1, in parallel) and
// `e2e` (the real Asterisk test bed and SIPp; one file at a time, since files
// share Asterisk's ports and the Stasis app name).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Randomised and fuzz tests share two cores with the rest of the layer.
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/testbed-setup.ts'],
          // After each file: its services' logs hold no number in clear, DTMF, transcript or secret.
          setupFiles: ['test/support/log-audit-hooks.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
