import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText, type Api, type Channel, type Conversation, type CostPreview, type Hit, type Message, type Schemas } from '../../src/api/client';
import { channelLabel, lastChannel, money, newKey } from './format';
import type { AgentSocket } from './socket';

interface Props {
  api: Api;
  conversation: Conversation;
  socket: AgentSocket;
  onSent(m: Message): void;
}

interface Upload {
  key: string;
  name: string;
}

/**
 * The reply box. One Idempotency-Key per draft: a double click, a retry after a timeout or a second
 * press while the first is in flight all reach the API with the same key, so the customer gets the
 * reply once. `/shortcut` completes canned responses (ranked by the API), filled for this
 * conversation; the cost preview follows the text (segments, encoding, price, WhatsApp's window).
 */
export function Composer({ api, conversation: c, socket, onSent }: Props) {
  const routes = Object.keys(c.channels ?? {}) as Channel[];
  const [channel, setChannel] = useState<Channel | null>(lastChannel(c));
  const [text, setText] = useState('');
  const [key, setKey] = useState(newKey);
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [hits, setHits] = useState<Hit[]>([]);
  const [active, setActive] = useState(0);
  const [preview, setPreview] = useState<CostPreview | null>(null);
  const [files, setFiles] = useState<Upload[]>([]);
  const [templates, setTemplates] = useState<Schemas['WhatsAppTemplate'][]>([]);
  const [template, setTemplate] = useState<{ name: string; language: string; parameters: string[] } | null>(null);
  const inFlight = useRef(false);
  const typingSent = useRef(0);
  const typingStop = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const input = useRef<HTMLTextAreaElement>(null);

  // `/word` at the start: canned responses matching it, as the API ranks them.
  const shortcut = /^\/(\S*)$/.exec(text)?.[1];
  useEffect(() => {
    if (shortcut === undefined) {
      setHits([]);
      return;
    }
    let live = true;
    const t = setTimeout(async () => {
      const r = await api.GET('/canned-responses', { params: { query: { q: shortcut, limit: 8 } } });
      if (live && r.data) {
        setHits(r.data.items);
        setActive(0);
      }
    }, 120);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [shortcut, api]);

  // The price of what is typed, on the channel it would go to.
  useEffect(() => {
    if (!channel || shortcut !== undefined) return;
    let live = true;
    const t = setTimeout(async () => {
      const r = await api.POST('/finance/preview', {
        body: { channel, text, conversation_id: c.id, media: files.length > 0 },
      });
      if (live) setPreview(r.data ?? null);
    }, 300);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [text, channel, c.id, api, shortcut, files.length]);

  // WhatsApp outside its 24-hour window takes only an approved template: offer them.
  const windowClosed = channel === 'whatsapp' && preview?.whatsapp?.template_required === true;
  useEffect(() => {
    if (!windowClosed || templates.length) return;
    void api.GET('/whatsapp/templates', { params: { query: { status: 'approved' } } }).then((r) => setTemplates((r.data?.items ?? []).map((i) => i.template)));
  }, [windowClosed, api, templates.length]);

  const typing = (on: boolean) => {
    clearTimeout(typingStop.current);
    if (on) {
      if (Date.now() - typingSent.current > 3000) {
        socket.send({ action: 'typing', conversation_id: c.id, typing: true });
        typingSent.current = Date.now();
      }
      typingStop.current = setTimeout(() => typing(false), 4000);
    } else if (typingSent.current) {
      socket.send({ action: 'typing', conversation_id: c.id, typing: false });
      typingSent.current = 0;
    }
  };

  const choose = async (hit: Hit) => {
    const r = await api.POST('/canned-responses/{id}/preview', {
      params: { path: { id: hit.canned_response.id } },
      body: { conversation_id: c.id },
    });
    setHits([]);
    if (r.data) setText(r.data.text);
    else setError(errorText(r.error, r.response));
    input.current?.focus();
  };

  const attach = async (file: File) => {
    setError(null);
    const link = await api.POST('/uploads', {
      body: { file_name: file.name, content_type: file.type || 'application/octet-stream', size: file.size },
    });
    if (!link.data) {
      setError(errorText(link.error, link.response));
      return;
    }
    const put = await fetch(link.data.url, { method: 'PUT', headers: link.data.headers as Record<string, string>, body: file });
    if (!put.ok) {
      setError(`the upload failed (${put.status})`);
      return;
    }
    setFiles((f) => [...f, { key: link.data.key, name: file.name }]);
  };

  const send = async () => {
    const useTemplate = windowClosed && template;
    if (inFlight.current || (!useTemplate && !text.trim() && files.length === 0)) return;
    inFlight.current = true;
    setSending(true);
    try {
      const r = await api.POST('/conversations/{id}/messages', {
        params: { path: { id: c.id }, header: { 'Idempotency-Key': key } },
        body: useTemplate
          ? { channel: 'whatsapp', template: useTemplate }
          : {
              text,
              ...(channel ? { channel } : {}),
              ...(files.length ? { attachments: files.map((f) => ({ key: f.key })) } : {}),
            },
      });
      if (r.data) {
        onSent(r.data.message);
        setText('');
        setFiles([]);
        setTemplate(null);
        setKey(newKey());
        setError(null);
        typing(false);
      } else {
        // The same key stays: sending again is a retry, never a second message.
        setError(errorText(r.error, r.response));
      }
    } catch (e) {
      setError(`not sent (${e instanceof Error ? e.message : 'network'}): press Send to retry`);
    } finally {
      inFlight.current = false;
      setSending(false);
    }
  };

  const onKey = (e: KeyboardEvent) => {
    if (hits.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        setActive((a) => (a + (e.key === 'ArrowDown' ? 1 : hits.length - 1)) % hits.length);
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        const hit = hits[active];
        if (hit) void choose(hit);
        return;
      }
      if (e.key === 'Escape') {
        setHits([]);
        return;
      }
    }
    if (e.key === 'Enter' && (e.metaKey || e.ctrlKey)) {
      e.preventDefault();
      void send();
    }
  };

  const wa = preview?.whatsapp;
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      {hits.length > 0 && (
        <ul class="suggestions" role="listbox" id="canned-suggestions" aria-label="Canned responses">
          {hits.map((h, i) => (
            <li
              key={h.canned_response.id}
              id={`canned-${h.canned_response.id}`}
              role="option"
              aria-selected={i === active}
              class={i === active ? 'active' : ''}
              onMouseDown={(e) => {
                e.preventDefault();
                void choose(h);
              }}
            >
              <code>{h.canned_response.shortcut}</code> {h.canned_response.title}
            </li>
          ))}
        </ul>
      )}
      {windowClosed && (
        <fieldset class="templates">
          <legend>WhatsApp's 24-hour window is closed: send an approved template</legend>
          <label>
            Template
            <select
              value={template ? `${template.name}|${template.language}` : ''}
              onChange={(e) => {
                const t = templates.find((x) => `${x.name}|${x.language}` === e.currentTarget.value);
                const count = t ? new Set(t.body.match(/\{\{\d+\}\}/g) ?? []).size : 0;
                setTemplate(t ? { name: t.name, language: t.language, parameters: Array.from({ length: count }, () => '') } : null);
              }}
            >
              <option value="">Choose a template</option>
              {templates.map((t) => (
                <option key={`${t.name}|${t.language}`} value={`${t.name}|${t.language}`}>
                  {t.name} ({t.language}): {t.body}
                </option>
              ))}
            </select>
          </label>
          {template?.parameters.map((p, i) => (
            <label key={i}>
              {`{{${i + 1}}}`}
              <input
                value={p}
                onInput={(e) => {
                  const v = e.currentTarget.value;
                  setTemplate((t) => t && { ...t, parameters: t.parameters.map((x, j) => (j === i ? v : x)) });
                }}
              />
            </label>
          ))}
        </fieldset>
      )}
      <div class="compose-row">
        <label>
          <span class="visually-hidden">Reply</span>
          <textarea
            ref={input}
            rows={3}
            value={text}
            placeholder="Reply… (/ for canned responses, Ctrl+Enter sends)"
            aria-autocomplete="list"
            aria-controls={hits.length ? 'canned-suggestions' : undefined}
            aria-activedescendant={hits[active] ? `canned-${hits[active].canned_response.id}` : undefined}
            onInput={(e) => {
              setText(e.currentTarget.value);
              typing(true);
            }}
            onKeyDown={onKey}
          />
        </label>
      </div>
      <div class="compose-bar">
        <label>
          <span class="visually-hidden">Channel</span>
          <select value={channel ?? ''} onChange={(e) => setChannel(e.currentTarget.value as Channel)}>
            {[...new Set(routes.length ? routes : channel ? [channel] : [])].map((ch) => (
              <option key={ch} value={ch}>
                {channelLabel(ch)}
              </option>
            ))}
          </select>
        </label>
        <label class="attach">
          Attach a file
          <input
            type="file"
            onChange={(e) => {
              const f = e.currentTarget.files?.[0];
              if (f) void attach(f);
              e.currentTarget.value = '';
            }}
          />
        </label>
        {files.map((f) => (
          <span class="tag" key={f.key}>
            {f.name}
          </span>
        ))}
        <span class="preview" aria-live="polite">
          {preview?.sms && (
            <>
              {preview.sms.segments} segment{preview.sms.segments === 1 ? '' : 's'} · {preview.sms.encoding}
              {preview.sms.ucs2_because_of ? ` (because of “${preview.sms.ucs2_because_of}”)` : ''} ·{' '}
            </>
          )}
          {wa && (wa.window_open ? '24 h window open · ' : 'Window closed: template only · ')}
          {preview?.estimate && money(Number(preview.estimate.provider.micros), preview.estimate.currency)}
          {preview?.refused_by_budget && <strong> {preview.refused_by_budget}</strong>}
        </span>
        <button type="submit" class="primary" disabled={sending}>
          {sending ? 'Sending…' : 'Send'}
        </button>
      </div>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </form>
  );
}
