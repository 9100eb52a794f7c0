import { describe, expect, it } from 'vitest';
import { formatReport, type CheckResult } from '../../app/check/report.js';
import { findModuleProblems, modulesConfLine, requiredModules } from '../../app/check/required-modules.js';

const allOk: CheckResult[] = [
  { name: 'configuration', status: 'ok', summary: 'valid (no configuration file)' },
  { name: 'ARI', status: 'ok', summary: 'connected to http://127.0.0.1:8088/ as transcription-proxy' },
  { name: 'modules', status: 'ok', summary: 'all 15 modules the rtp media transport needs are running' },
  { name: 'stream', status: 'ok', summary: 'ws://127.0.0.1:8090/ accepted a websocket connection; closed again, nothing sent' },
];

describe('formatReport', () => {
  it('redacts credentials in a URL it prints', () => {
    const report = formatReport([
      { name: 'stream', status: 'fail', summary: 'wss://asr.example.com/s?token=tk-91x&lang=en refused the connection (401)' },
    ]);
    expect(report.text).not.toContain('tk-91x');
    expect(report.text).toContain('token=[redacted]&lang=en');
  });

  it('all OK: one OK line per check, exit code 0', () => {
    const report = formatReport(allOk, { title: 'transcription-proxy check' });
    expect(report.exitCode).toBe(0);
    const lines = report.text.trimEnd().split('\n');
    expect(lines[0]).toBe('transcription-proxy check');
    expect(lines.slice(1, 5)).toEqual([
      'OK    configuration  valid (no configuration file)',
      'OK    ARI            connected to http://127.0.0.1:8088/ as transcription-proxy',
      'OK    modules        all 15 modules the rtp media transport needs are running',
      'OK    stream         ws://127.0.0.1:8090/ accepted a websocket connection; closed again, nothing sent',
    ]);
    expect(lines.at(-1)).toBe('All 4 checks passed.');
  });

  it('a missing module: FAIL line, the modules.conf line under it, exit code 1', () => {
    const results = allOk.map((r) =>
      r.name !== 'modules'
        ? r
        : {
            name: 'modules',
            status: 'fail' as const,
            summary: '1 of 15 modules the rtp media transport needs is not running: chan_rtp',
            details: ['chan_rtp: not loaded; add to modules.conf: load => chan_rtp.so  (ExternalMedia channels over RTP, the rtp tap)'],
          },
    );
    const report = formatReport(results);
    expect(report.exitCode).toBe(1);
    expect(report.text).toContain('FAIL  modules        1 of 15 modules the rtp media transport needs is not running: chan_rtp\n');
    expect(report.text).toContain(
      '\n                     chan_rtp: not loaded; add to modules.conf: load => chan_rtp.so  (ExternalMedia channels over RTP, the rtp tap)\n',
    );
    expect(report.text.trimEnd().split('\n').at(-1)).toBe('1 of 4 checks failed.');
  });

  it('a check that could not run is SKIP and fails the verdict', () => {
    const results: CheckResult[] = [
      { name: 'ARI', status: 'fail', summary: 'cannot reach ARI' },
      { name: 'modules', status: 'skipped', summary: 'not checked: needs a working ARI connection' },
    ];
    const report = formatReport(results);
    expect(report.exitCode).toBe(1);
    expect(report.text).toContain('SKIP  modules  not checked');
    expect(report.text).toContain('1 of 2 checks failed, 1 could not run.');
    expect(formatReport([{ name: 'modules', status: 'skipped', summary: 'x' }]).exitCode).toBe(1);
  });

  it('no results is not a pass', () => {
    expect(formatReport([]).exitCode).toBe(1);
  });

  it('never prints a secret, even when a result carries one', () => {
    const results: CheckResult[] = [
      { name: 'ARI', status: 'fail', summary: 'server said: bad password hunter2-ari', details: ['token tok-ABCDEF was refused'] },
    ];
    const report = formatReport(results, { secrets: ['hunter2-ari', 'tok-ABCDEF'] });
    expect(report.text).not.toContain('hunter2-ari');
    expect(report.text).not.toContain('tok-ABCDEF');
    expect(report.text).toContain('bad password [secret]');
    expect(report.text).toContain('token [secret] was refused');
  });
});

describe('requiredModules', () => {
  const common = [
    'res_ari',
    'res_ari_events',
    'res_ari_channels',
    'res_ari_bridges',
    'res_ari_asterisk',
    'res_stasis',
    'res_stasis_snoop',
    'app_stasis',
    'res_http_websocket',
    'chan_pjsip',
    'res_pjsip',
    'res_pjsip_refer',
    'bridge_softmix',
    'res_timing_timerfd',
  ];
  const names = (transport: Parameters<typeof requiredModules>[0]) => requiredModules(transport).map((m) => m.name);

  it('rtp: the common modules plus chan_rtp and res_rtp_asterisk', () => {
    expect(names('rtp')).toEqual([...common, 'chan_rtp', 'res_rtp_asterisk']);
  });
  it('audiosocket: the common modules plus chan_audiosocket and res_audiosocket', () => {
    expect(names('audiosocket')).toEqual([...common, 'chan_audiosocket', 'res_audiosocket']);
  });
  it('websocket: the common modules plus chan_websocket', () => {
    expect(names('websocket')).toEqual([...common, 'chan_websocket']);
  });
  it('every module says why it is needed, and no name carries .so', () => {
    for (const transport of ['rtp', 'audiosocket', 'websocket'] as const) {
      for (const module of requiredModules(transport)) {
        expect(module.why.length).toBeGreaterThan(10);
        expect(module.name).not.toMatch(/\.so$/);
        expect(module.why).not.toMatch(/[()]/); // printed inside parentheses
      }
    }
  });
  it('modulesConfLine gives the exact modules.conf line', () => {
    expect(modulesConfLine('chan_rtp')).toBe('load => chan_rtp.so');
  });
});

describe('findModuleProblems', () => {
  // As Asterisk 22 lists them: loadable modules with ".so", built-in ones without.
  const running = (name: string) => ({ name, status: 'Running' });

  it('matches ARI names with the .so suffix against the table, in table order', () => {
    const required = requiredModules('rtp');
    const loaded = [running('http'), ...required.map((m) => running(`${m.name}.so`))];
    expect(findModuleProblems(required, loaded)).toEqual([]);
    const withoutRtp = loaded.filter((m) => m.name !== 'chan_rtp.so' && m.name !== 'res_stasis_snoop.so');
    expect(findModuleProblems(required, withoutRtp).map((p) => [p.module.name, p.state])).toEqual([
      ['res_stasis_snoop', 'absent'],
      ['chan_rtp', 'absent'],
    ]);
  });

  it('a module listed with another status than Running is a problem with that status', () => {
    const required = [{ name: 'chan_rtp', why: 'rtp' }];
    expect(findModuleProblems(required, [{ name: 'chan_rtp.so', status: 'Not Running' }])).toEqual([
      { module: required[0], state: { status: 'Not Running' } },
    ]);
  });
});
