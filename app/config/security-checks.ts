/**
 * Start-up checks that refuse a configuration which would hand a credential
 * to anyone on the path, so the mistake shows at `serve` (exit 2, the key
 * named) and not in an incident report:
 *
 * - a bearer token (STREAM_TOKEN, or an Authorization header in
 *   STREAM_EXTRA_HEADERS) sent over ws:// to a host that is not loopback;
 * - Voicegain's JWT_TOKEN sent over http:// to a host that is not loopback;
 *   both unless ALLOW_INSECURE_TRANSPORT=true (a private network the operator
 *   vouches for);
 * - a placeholder password shipped with the project (.env.example,
 *   asterisk/plain/ari_transcription-proxy.conf,
 *   asterisk/freepbx/ari_additional_custom.conf) used for ARI or AMI when that
 *   interface is not on loopback: everybody knows these passwords. On
 *   loopback they stay usable, for the test bed and a first run.
 */
import type { ConfigProblem } from '../errors.js';
import type { ConfigKey } from './keys.js';

/** The passwords the project ships as placeholders; never acceptable beyond loopback. */
export const PLACEHOLDER_SECRETS: readonly string[] = ['change-me-ari-secret', 'CHANGE-ME-to-a-long-random-secret', 'change-me-ami-secret'];

/** Loopback addresses: localhost, 127.0.0.0/8, ::1 (bare or in brackets, as URL.hostname gives it). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

function isPlaceholder(secret: unknown): boolean {
  return typeof secret === 'string' && PLACEHOLDER_SECRETS.some((placeholder) => placeholder.toLowerCase() === secret.toLowerCase());
}

export function checkSecurity(values: Record<string, unknown>, origins: Record<ConfigKey, string>, problems: ConfigProblem[]): void {
  const refuse = (key: ConfigKey, message: string) => {
    if (!problems.some((problem) => problem.key === key)) problems.push({ key, source: origins[key], message });
  };
  const insecureAllowed = values.ALLOW_INSECURE_TRANSPORT === true;
  const insecureHint = 'use an encrypted URL, or set ALLOW_INSECURE_TRANSPORT=true if the network in between is yours';

  const streamUrl = values.STREAM_URL;
  const provider = values.PROVIDER;
  if (!insecureAllowed && streamUrl instanceof URL && streamUrl.protocol === 'ws:' && !isLoopbackHost(streamUrl.hostname)) {
    if (provider !== 'voicegain' && typeof values.STREAM_TOKEN === 'string') {
      refuse(
        'STREAM_TOKEN',
        `would be sent as a bearer token unencrypted over ws:// to ${streamUrl.hostname} (STREAM_URL, ${origins.STREAM_URL}): ${insecureHint}`,
      );
    }
    const headers = values.STREAM_EXTRA_HEADERS;
    if (
      provider !== 'voicegain' &&
      typeof headers === 'object' &&
      headers !== null &&
      Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')
    ) {
      refuse(
        'STREAM_EXTRA_HEADERS',
        `its Authorization header would be sent unencrypted over ws:// to ${streamUrl.hostname}: ${insecureHint}`,
      );
    }
  }
  const voicegain = values.VG_GATEWAY_URL;
  if (
    !insecureAllowed &&
    provider === 'voicegain' &&
    voicegain instanceof URL &&
    voicegain.protocol === 'http:' &&
    !isLoopbackHost(voicegain.hostname)
  ) {
    if (typeof values.JWT_TOKEN === 'string') {
      refuse(
        'JWT_TOKEN',
        `would be sent unencrypted over http:// to ${voicegain.hostname} (VG_GATEWAY_URL, ${origins.VG_GATEWAY_URL}): ${insecureHint}`,
      );
    }
  }

  const ariUrl = values.ARI_URL;
  if (ariUrl instanceof URL && !isLoopbackHost(ariUrl.hostname) && isPlaceholder(values.ARI_PASSWORD)) {
    refuse(
      'ARI_PASSWORD',
      `is the placeholder shipped with the project, and ARI (${ariUrl.hostname}) is not on loopback: give ARI a long random password (openssl rand -hex 24)`,
    );
  }
  if (
    typeof values.AMI_HOST === 'string' &&
    !isLoopbackHost(values.AMI_HOST) &&
    values.AMI_USERNAME !== undefined &&
    isPlaceholder(values.AMI_SECRET)
  ) {
    refuse(
      'AMI_SECRET',
      `is the placeholder shipped with the project, and AMI (${values.AMI_HOST}) is not on loopback: give the AMI user a long random secret`,
    );
  }
}
