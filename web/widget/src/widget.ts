// The web chat widget: one <script> tag, no framework, its own Shadow DOM so the host page's CSS
// cannot reach it (nor ours the page).
//
//   <script src="https://<console host>/widget.js" data-key="wk_…" data-api="https://<api>" async></script>
//
// It speaks the visitor protocol of docs/web-chat.md: a session from POST /webchat/{key}/visitors
// (the token kept in localStorage, so a returning visitor stays the same visitor), the visitors'
// socket with the token as the second subprotocol, `message`/`typing`/`read`/`upload`/`identify`/
// `history` frames, reconnect with capped jittered backoff, and the history re-read after every
// reconnect so nothing said meanwhile is missed.
import type { components } from '../../src/api/openapi';
import { STYLES } from './styles';

type Session = components['schemas']['WebchatSession'];
type Availability = components['schemas']['Availability'];
type VisitorView = components['schemas']['VisitorView'];
type VisitorFrame = components['schemas']['VisitorFrame'];

interface Shown {
  id: string;
  from: 'visitor' | 'agent';
  text: string;
  files: { name: string; url?: string | null }[];
  at: string;
  state?: 'sending' | 'sent' | 'seen' | 'failed';
}

const script = document.currentScript as HTMLScriptElement | null;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

class Widget {
  private readonly root: ShadowRoot;
  private readonly log: HTMLOListElement;
  private readonly panel: HTMLDivElement;
  private readonly launcher: HTMLButtonElement;
  private readonly input: HTMLTextAreaElement;
  private readonly status: HTMLParagraphElement;
  private readonly typingLine: HTMLParagraphElement;
  private readonly emailForm: HTMLFormElement;
  private readonly title: HTMLHeadingElement;
  private session: Session | null = null;
  private socket: WebSocket | null = null;
  private attempt = 0;
  private readonly shown = new Map<string, Shown>();
  private readonly pending = new Map<string, { text: string; files: { key: string }[] }>();
  private typingAt = 0;
  private lastRead = '';
  private emailGiven = false;

  constructor(
    host: HTMLElement,
    private readonly key: string,
    private readonly api: string,
  ) {
    this.root = host.attachShadow({ mode: 'open' });
    const style = el('style');
    style.textContent = STYLES;
    this.launcher = el('button', { class: 'launcher', type: 'button', 'aria-expanded': 'false', 'aria-controls': 'sb-panel' }, 'Chat with us');
    this.panel = el('div', { class: 'panel', id: 'sb-panel', role: 'dialog', 'aria-label': 'Chat', hidden: '' });
    const head = el('div', { class: 'head' });
    this.title = el('h2', {}, 'Chat with us');
    const close = el('button', { type: 'button', class: 'close', 'aria-label': 'Close chat' }, '×');
    head.append(this.title, close);
    this.status = el('p', { class: 'status', role: 'status' });
    this.log = el('ol', { class: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation' });
    this.typingLine = el('p', { class: 'typing', 'aria-live': 'polite' });
    this.emailForm = el('form', { class: 'email', hidden: '' });
    const emailLabel = el('label', {}, 'Nobody is online right now. Leave your email and we will answer there:');
    const email = el('input', { type: 'email', name: 'email', autocomplete: 'email', required: '' });
    emailLabel.append(email);
    this.emailForm.append(emailLabel, el('button', { type: 'submit' }, 'Save email'));
    const form = el('form', { class: 'compose' });
    const label = el('label', { for: 'sb-input', class: 'sr' }, 'Your message');
    this.input = el('textarea', { id: 'sb-input', rows: '2', placeholder: 'Write a message…' });
    const fileLabel = el('label', { class: 'file' }, 'Attach');
    const file = el('input', { type: 'file', 'aria-label': 'Attach a file' });
    fileLabel.append(file);
    form.append(label, this.input, fileLabel, el('button', { type: 'submit', class: 'send' }, 'Send'));
    this.panel.append(head, this.status, this.log, this.typingLine, this.emailForm, form);
    this.root.append(style, this.launcher, this.panel);

    this.launcher.addEventListener('click', () => this.toggle(true));
    close.addEventListener('click', () => this.toggle(false));
    this.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.toggle(false);
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.sendText();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        this.sendText();
      }
    });
    this.input.addEventListener('input', () => {
      if (Date.now() - this.typingAt > 3000) {
        this.typingAt = Date.now();
        this.frame({ action: 'typing', typing: true });
      }
    });
    file.addEventListener('change', () => {
      const f = file.files?.[0];
      file.value = '';
      if (f) void this.upload(f);
    });
    this.emailForm.addEventListener('submit', (e) => {
      e.preventDefault();
      if (email.value && this.frame({ action: 'identify', email: email.value })) {
        this.emailGiven = true;
        this.emailForm.hidden = true;
        this.status.textContent = `We will answer at ${email.value} if you have left.`;
      }
    });
    document.addEventListener('visibilitychange', () => this.markRead());
  }

  private storageKey(): string {
    return `switchboard.widget.${this.key}`;
  }

  toggle(open: boolean): void {
    this.panel.hidden = !open;
    this.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
      if (!this.session) void this.start();
      this.input.focus();
      this.markRead();
    } else {
      this.launcher.focus();
    }
  }

  private async start(): Promise<void> {
    this.status.textContent = 'Connecting…';
    const saved = localStorage.getItem(this.storageKey());
    try {
      const res = await fetch(`${this.api}/webchat/${encodeURIComponent(this.key)}/visitors`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(saved ? { token: saved } : {}),
      });
      if (!res.ok) throw new Error(String(res.status));
      this.session = (await res.json()) as Session;
    } catch {
      this.status.textContent = 'Chat is unavailable right now. Please try again later.';
      return;
    }
    localStorage.setItem(this.storageKey(), this.session.token);
    if (this.session.title) this.title.textContent = this.session.title;
    this.showAvailability(this.session.availability);
    this.connect();
  }

  private showAvailability(a: Availability): void {
    this.status.textContent = a.message;
    this.emailForm.hidden = !(a.ask_for_email && !this.emailGiven);
  }

  private connect(): void {
    const s = this.session;
    if (!s) return;
    const ws = new WebSocket(`${s.socket_url}?key=${encodeURIComponent(this.key)}`, [s.subprotocol, s.token]);
    this.socket = ws;
    ws.onopen = () => {
      this.attempt = 0;
      // What was said while we were away, then anything this page still owes the server.
      this.frame({ action: 'history' });
      for (const [clientId, p] of this.pending) this.frame({ action: 'message', client_id: clientId, text: p.text, attachments: p.files });
    };
    ws.onmessage = (e: MessageEvent<string>) => this.onFrame(e.data);
    ws.onclose = (e) => {
      if (this.socket !== ws) return;
      this.socket = null;
      if (e.code === 1008 || e.code === 4001) {
        // The token was refused: start over as a new visitor.
        localStorage.removeItem(this.storageKey());
        this.session = null;
        void this.start();
        return;
      }
      const delay = Math.min(30_000, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.status.textContent = 'Reconnecting…';
      setTimeout(() => this.connect(), delay);
    };
  }

  private frame(body: Record<string, unknown>): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(body));
    return true;
  }

  private onFrame(data: string): void {
    let f: Record<string, unknown>;
    try {
      f = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    if ('type' in f) {
      const push = f as VisitorFrame;
      if (push.type === 'message') {
        this.typingLine.textContent = '';
        this.add(this.fromView(push.message));
        this.markRead();
      } else if (push.type === 'typing') {
        this.typingLine.textContent = push.typing ? 'An agent is typing…' : '';
      } else if (push.type === 'seen') {
        for (const m of this.shown.values()) if (m.from === 'visitor' && m.state === 'sent' && m.at <= push.at) this.setState(m, 'seen');
      }
      return;
    }
    if (f.error) {
      const err = f.error as { message?: string };
      this.status.textContent = err.message ?? 'Something went wrong.';
      return;
    }
    switch (f.action) {
      case 'message': {
        const id = String(f.client_id);
        this.pending.delete(id);
        const m = this.shown.get(id);
        if (m) this.setState(m, 'sent');
        if (f.availability) this.showAvailability(f.availability as Availability);
        break;
      }
      case 'history':
        for (const v of (f.messages as VisitorView[] | undefined) ?? []) this.add(this.fromView(v));
        this.markRead();
        break;
      case 'upload':
        this.onUploadLink(f);
        break;
      case 'identify':
        // The address stays unconfirmed until the visitor opens the link mailed to it.
        if (f.proof === 'sent' && typeof f.email === 'string') {
          this.status.textContent = `We will answer at ${f.email}. We sent a link there: open it to confirm the address is yours.`;
        }
        break;
    }
  }

  private fromView(v: VisitorView): Shown {
    return {
      id: v.id,
      from: v.from === 'agent' ? 'agent' : 'visitor',
      text: v.text ?? '',
      files: (v.files ?? []).map((file) => ({ name: file.file_name ?? 'file', url: file.url ?? null })),
      at: v.at,
      state: v.from === 'agent' ? undefined : 'sent',
    };
  }

  private add(m: Shown): void {
    if (this.shown.has(m.id)) return;
    this.shown.set(m.id, m);
    const li = el('li', { class: `msg ${m.from}`, 'data-id': m.id });
    if (m.text) li.append(el('p', {}, m.text));
    for (const file of m.files) {
      if (file.url) {
        const a = el('a', { href: file.url, target: '_blank', rel: 'noopener' }, file.name);
        li.append(a);
      } else li.append(el('span', { class: 'fname' }, file.name));
    }
    const meta = el('span', { class: 'meta' }, m.from === 'agent' ? 'Support' : '');
    li.append(meta);
    this.log.append(li);
    if (m.state) this.setState(m, m.state);
    this.log.scrollTop = this.log.scrollHeight;
  }

  private setState(m: Shown, state: NonNullable<Shown['state']>): void {
    m.state = state;
    const meta = this.log.querySelector(`li[data-id="${CSS.escape(m.id)}"] .meta`);
    const words = { sending: 'Sending…', sent: 'Sent', seen: 'Seen', failed: 'Not sent' } as const;
    if (meta) meta.textContent = words[state];
  }

  private sendText(): void {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = '';
    this.typingAt = 0;
    this.frame({ action: 'typing', typing: false });
    this.sendMessage(text, []);
  }

  private sendMessage(text: string, files: { key: string; name: string }[]): void {
    const clientId = `m-${crypto.randomUUID()}`;
    const refs = files.map((f) => ({ key: f.key }));
    this.pending.set(clientId, { text, files: refs });
    this.add({ id: clientId, from: 'visitor', text, files: files.map((f) => ({ name: f.name })), at: new Date().toISOString(), state: 'sending' });
    this.frame({ action: 'message', client_id: clientId, text, attachments: refs });
  }

  private uploading: File | null = null;

  private async upload(file: File): Promise<void> {
    this.uploading = file;
    if (!this.frame({ action: 'upload', file_name: file.name, content_type: file.type || 'application/octet-stream', size: file.size })) {
      this.status.textContent = 'Not connected: try again in a moment.';
    }
  }

  private onUploadLink(f: Record<string, unknown>): void {
    const file = this.uploading;
    this.uploading = null;
    if (!file) return;
    void fetch(String(f.url), { method: 'PUT', headers: f.headers as Record<string, string>, body: file }).then((res) => {
      if (res.ok) this.sendMessage('', [{ key: String(f.key), name: file.name }]);
      else this.status.textContent = `The file could not be uploaded (${res.status}).`;
    });
  }

  /** Replies shown while the panel is open and the page visible are read: the agent's ticks turn. */
  private markRead(): void {
    if (this.panel.hidden || document.visibilityState !== 'visible') return;
    const last = [...this.shown.values()].filter((m) => m.from === 'agent').pop();
    if (last && last.id !== this.lastRead && this.frame({ action: 'read', up_to: last.id })) this.lastRead = last.id;
  }
}

function mount(): void {
  const key = script?.dataset.key;
  if (!key) {
    console.error('Switchboard widget: data-key is missing on the script tag');
    return;
  }
  const api = (script?.dataset.api ?? new URL(script?.src ?? location.href).origin).replace(/\/$/, '');
  const host = document.createElement('div');
  host.id = 'switchboard-widget';
  document.body.append(host);
  const widget = new Widget(host, key, api);
  if (script?.dataset.open === 'true') widget.toggle(true);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount);
else mount();
