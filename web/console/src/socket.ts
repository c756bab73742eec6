// The agent's live connection: the agents' WebSocket API with the ID token as the second
// subprotocol (browsers cannot set headers on a WebSocket). Reconnects with capped, jittered
// backoff; a heartbeat every 5 minutes keeps API Gateway's 10-minute idle timer from closing it;
// after a reconnect the screen re-reads through the REST API (pushes missed meanwhile are gone).
import type { AgentPush, ClientAction } from '../../src/api/client';

export type SocketState = 'connecting' | 'live' | 'offline';

export interface SocketHandlers {
  onPush(push: AgentPush): void;
  onState(state: SocketState): void;
  /** Called after every (re)connection: re-read what may have been missed, re-send presence. */
  onOpen(): void;
}

const HEARTBEAT_MS = 5 * 60 * 1000;

export class AgentSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private closed = false;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly url: string,
    private readonly token: () => string,
    private readonly handlers: SocketHandlers,
  ) {}

  start(): void {
    this.closed = false;
    this.connect();
  }

  stop(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    this.ws?.close(1000);
  }

  send(action: ClientAction): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(action));
    return true;
  }

  private connect(): void {
    this.handlers.onState('connecting');
    const ws = new WebSocket(this.url, ['switchboard.v1', this.token()]);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.handlers.onState('live');
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.send({ action: 'heartbeat' }), HEARTBEAT_MS);
      this.handlers.onOpen();
    };
    ws.onmessage = (e: MessageEvent<string>) => {
      let frame: unknown;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      // Pushed events carry `event`; answers to our own actions carry `action` and are ignored.
      if (frame && typeof frame === 'object' && 'event' in frame) this.handlers.onPush(frame as AgentPush);
    };
    ws.onclose = () => {
      clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.onState('offline');
      if (this.closed) return;
      const delay = Math.min(30_000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.retry = setTimeout(() => this.connect(), delay);
    };
  }
}
