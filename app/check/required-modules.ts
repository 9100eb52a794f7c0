/**
 * Which Asterisk modules the service needs, per media transport, and which of
 * them a running Asterisk lacks. A pure table and a pure comparison: the
 * `check` command asks ARI for the module list and feeds it in here.
 *
 * Asterisk lists loadable modules with their `.so` suffix (`chan_rtp.so`) and
 * built-in ones without (`http`); a module that is not loaded is simply absent
 * from the list, not listed with another status.
 */

export type MediaTransport = 'rtp' | 'audiosocket' | 'websocket';

export interface RequiredModule {
  /** Without `.so`. */
  name: string;
  why: string;
}

const COMMON: readonly RequiredModule[] = [
  { name: 'res_ari', why: 'ARI, the REST interface the service drives Asterisk through' },
  { name: 'res_ari_events', why: "ARI's event websocket, which registers the Stasis app" },
  { name: 'res_ari_channels', why: 'ARI channel operations: dial, snoop, ExternalMedia, hangup' },
  { name: 'res_ari_bridges', why: 'ARI bridge operations' },
  { name: 'res_ari_asterisk', why: 'ARI asterisk resources: module list, dynamic configuration' },
  { name: 'res_stasis', why: 'the Stasis application framework' },
  { name: 'res_stasis_snoop', why: "snoop channels, which tap each leg's audio" },
  { name: 'app_stasis', why: 'the Stasis dialplan application, which hands calls to the service' },
  { name: 'res_http_websocket', why: "websockets on Asterisk's HTTP server, for ARI events" },
  { name: 'chan_pjsip', why: 'PJSIP channels: the legs of each call' },
  { name: 'res_pjsip', why: 'the PJSIP stack' },
  { name: 'res_pjsip_refer', why: 'SIP REFER, so that either party can transfer a call; without it a transfer gets no answer' },
  { name: 'bridge_softmix', why: "mixing bridges: the call's bridge and each tap's bridge" },
  { name: 'res_timing_timerfd', why: 'timing source that snoop channels need' },
];

const BY_TRANSPORT: Readonly<Record<MediaTransport, readonly RequiredModule[]>> = {
  rtp: [
    { name: 'chan_rtp', why: 'ExternalMedia channels over RTP, the rtp tap' },
    { name: 'res_rtp_asterisk', why: 'the RTP stack of ExternalMedia RTP channels' },
  ],
  audiosocket: [
    { name: 'chan_audiosocket', why: 'ExternalMedia channels over AudioSocket, the audiosocket tap' },
    { name: 'res_audiosocket', why: 'the AudioSocket protocol' },
  ],
  websocket: [{ name: 'chan_websocket', why: 'ExternalMedia channels over websocket, the websocket tap' }],
};

export function requiredModules(transport: MediaTransport): RequiredModule[] {
  return [...COMMON, ...BY_TRANSPORT[transport]];
}

/** The line that loads a module from modules.conf. */
export function modulesConfLine(name: string): string {
  return `load => ${name}.so`;
}

export interface ModuleProblem {
  module: RequiredModule;
  /** 'absent': not loaded at all; otherwise the status Asterisk reports instead of "Running". */
  state: 'absent' | { status: string };
}

/** The required modules that are not loaded and running, in the table's order. */
export function findModuleProblems(
  required: readonly RequiredModule[],
  loaded: readonly { name: string; status: string }[],
): ModuleProblem[] {
  const statusByName = new Map(loaded.map((module) => [module.name.replace(/\.so$/, ''), module.status]));
  const problems: ModuleProblem[] = [];
  for (const module of required) {
    const status = statusByName.get(module.name);
    if (status === undefined) problems.push({ module, state: 'absent' });
    else if (status !== 'Running') problems.push({ module, state: { status } });
  }
  return problems;
}
