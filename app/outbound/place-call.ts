/**
 * The `call` command's work: ring the agent, and once the agent answers, let
 * the running service dial the number through the outbound gateway and bridge
 * and tap the call exactly as an inbound one. The agent's channel is
 * originated straight into the service's Stasis app with
 * `direction=outbound,number=…,call-id=…`; this command watches it through its
 * own ARI app (subscribed to that channel) and learns the outcome from events:
 * the service's TRANSCRIPTION_PROXY_OUTCOME variable on the agent's channel,
 * and the channel's end. No polling.
 */
import { randomUUID } from 'node:crypto';
import type { AriEvent, AriPort } from '../ari/ari-port.js';
import { OUTCOME_VARIABLE, outcomeOfCause, type CallOutcome } from '../calls/call-outcome.js';

export type { CallOutcome };

export interface PlaceCallRequest {
  number: string;
  /** The agent's dial string (AGENT_DIAL with the extension filled in). */
  agentEndpoint: string;
  /** The service's Stasis app (ARI_APP). */
  serviceApp: string;
  callerId?: string | undefined;
  timeoutMs: number;
}

export interface PlacedCall {
  callId: string;
  agentChannelId: string;
  /** Resolves when the agent's channel ends, with how the call went. */
  ended: Promise<CallOutcome>;
}

export async function placeCall(ari: AriPort, request: PlaceCallRequest): Promise<PlacedCall> {
  const callId = randomUUID();
  const agentChannelId = `agent-${callId}`;
  let outcome: CallOutcome | undefined;
  let resolveEnded!: (outcome: CallOutcome) => void;
  const ended = new Promise<CallOutcome>((resolve) => {
    resolveEnded = resolve;
  });

  const unsubscribe = ari.onEvent((event: AriEvent) => {
    if (event.type === 'Dial' || event.type === 'ChannelTransfer' || event.channel.id !== agentChannelId) return;
    if (event.type === 'ChannelVarset' && event.variable === OUTCOME_VARIABLE) {
      outcome = event.value as CallOutcome;
    } else if (event.type === 'ChannelDestroyed') {
      unsubscribe();
      resolveEnded(outcome ?? outcomeOfCause(event.cause));
    }
  });

  try {
    await ari.originate({
      channelId: agentChannelId,
      endpoint: request.agentEndpoint,
      app: request.serviceApp,
      appArgs: `direction=outbound,number=${request.number},call-id=${callId}`,
      timeoutSeconds: Math.max(1, Math.ceil(request.timeoutMs / 1000)),
      ...(request.callerId !== undefined && { callerId: request.callerId }),
    });
    await ari.subscribe(`channel:${agentChannelId}`);
  } catch (error) {
    // Originated but gone before we could watch it: it ended at once.
    unsubscribe();
    if (/not found/i.test(String((error as Error).message))) return { callId, agentChannelId, ended: Promise.resolve('failed') };
    throw error;
  }
  return { callId, agentChannelId, ended };
}
