/**
 * A minimal AMI client: one TCP connection, login, actions matched to their
 * responses by ActionID (with their event lists), and events. Only what the
 * service needs (an outbound registration's state); ARI stays the service's
 * interface to Asterisk for everything else.
 */
import { createConnection, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { AppError } from '../errors.js';
import { AmiDecoder, encodeAction, type AmiMessage } from './ami-codec.js';

export interface AmiConnectOptions {
  host: string;
  port: number;
  username: string;
  secret: string;
  /** Event classes to receive (`system` for registration events), or `off`. */
  events: string;
  timeoutMs?: number;
}

interface Pending {
  messages: AmiMessage[];
  resolve: (messages: AmiMessage[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class AmiClient extends EventEmitter {
  readonly #socket: Socket;
  readonly #pending = new Map<string, Pending>();
  readonly #timeoutMs: number;
  #nextId = 1;

  private constructor(socket: Socket, timeoutMs: number) {
    super();
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
  }

  static async connect(options: AmiConnectOptions): Promise<AmiClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const socket = createConnection({ host: options.host, port: options.port });
    socket.setEncoding('utf8');
    const client = new AmiClient(socket, timeoutMs);
    const decoder = new AmiDecoder();
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk)) client.#receive(message);
    });
    socket.on('close', () => {
      for (const [, pending] of client.#pending) pending.reject(new Error('AMI connection closed'));
      client.#pending.clear();
      client.emit('close');
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no AMI at ${options.host}:${options.port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`cannot reach AMI at ${options.host}:${options.port}: ${error.message}`));
      });
    });
    socket.on('error', () => socket.destroy());
    const [response] = await client.action('Login', { Username: options.username, Secret: options.secret, Events: options.events });
    if (response?.Response !== 'Success') {
      client.close();
      throw new AppError(
        'ARI_UNREACHABLE',
        `AMI refused the login of AMI_USERNAME (${options.username}): ${response?.Message ?? 'no answer'}`,
      );
    }
    return client;
  }

  #receive(message: AmiMessage): void {
    const id = message.ActionID;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (pending === undefined) {
      if (message.Event !== undefined) this.emit('event', message);
      return;
    }
    pending.messages.push(message);
    // A plain response ends the action; one that opens an event list ends at its Complete event.
    const listOpened = pending.messages[0]?.EventList === 'start';
    if (!listOpened || message.EventList === 'Complete') {
      clearTimeout(pending.timer);
      this.#pending.delete(id!);
      pending.resolve(pending.messages);
    }
  }

  /** Sends an action; resolves with its response and, for list actions, the listed events. */
  action(name: string, fields: Readonly<Record<string, string>> = {}): Promise<AmiMessage[]> {
    const id = String(this.#nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`AMI ${name}: no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(id, { messages: [], resolve, reject, timer });
      this.#socket.write(encodeAction(name, { ActionID: id, ...fields }));
    });
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroy();
  }
}
