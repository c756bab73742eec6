import { useEffect, useState } from 'preact/hooks';
import { errorText, type Api, type Conversation, type Message, type Note, type Schemas } from '../../src/api/client';
import type { Presence, PushListener } from './App';
import type { Session } from './auth';
import { Composer } from './Composer';
import { channelLabel, clockText, counterpart, failureReason, lastChannel, money, newKey, TICK } from './format';
import type { AgentSocket } from './socket';

interface Props {
  api: Api;
  conversation: Conversation;
  session: Session;
  socket: AgentSocket;
  subscribe(l: PushListener): () => void;
  activity: Presence;
  onChanged(c: Conversation): void;
}

type Profile = Schemas['ContactProfile'];

/** Messages in order, a newer copy of one replacing the older (status only moves forward). */
function merge(list: Message[], m: Message): Message[] {
  const i = list.findIndex((x) => x.id === m.id);
  if (i < 0) return [...list, m].sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  const copy = [...list];
  copy[i] = m;
  return copy;
}

export function ConversationPane({ api, conversation: c, session, socket, subscribe, activity, onChanged }: Props) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [notes, setNotes] = useState<Note[]>([]);
  const [profile, setProfile] = useState<Profile | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    let live = true;
    void (async () => {
      const [m, n, p] = await Promise.all([
        api.GET('/conversations/{id}/messages', { params: { path: { id: c.id }, query: { order: 'newest', limit: 100 } } }),
        api.GET('/conversations/{id}/notes', { params: { path: { id: c.id } } }),
        api.GET('/contacts/{id}', { params: { path: { id: c.contact_id } } }),
      ]);
      if (!live) return;
      if (m.data) setMessages([...m.data.items].reverse());
      else setError(errorText(m.error, m.response));
      if (n.data) setNotes(n.data.items);
      if (p.data) setProfile(p.data);
    })();
    return () => {
      live = false;
    };
  }, [api, c.id, c.contact_id]);

  useEffect(
    () =>
      subscribe((push) => {
        const ev = push.event;
        if (!('conversation_id' in ev) || ev.conversation_id !== c.id) return;
        if (push.message) {
          const m = push.message;
          setMessages((l) => merge(l, m));
        }
        if (ev.type === 'note_added') {
          void api.GET('/conversations/{id}/notes', { params: { path: { id: c.id } } }).then((r) => r.data && setNotes(r.data.items));
        }
      }),
    [subscribe, c.id, api],
  );

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);

  const act = async (run: () => Promise<{ data?: { conversation: Conversation }; error?: unknown; response: Response }>) => {
    const r = await run();
    if (r.data) {
      setError(null);
      onChanged(r.data.conversation);
    } else setError(errorText(r.error, r.response));
  };
  const patch = (body: Schemas['UpdateConversationRequest']) =>
    act(() => api.PATCH('/conversations/{id}', { params: { path: { id: c.id } }, body }));
  const assign = (agent: string | null, note?: string) =>
    act(() => api.PUT('/conversations/{id}/assignee', { params: { path: { id: c.id } }, body: { agent, ...(note ? { note } : {}) } }));

  // e resolves, a takes it, r writes a reply (not while typing somewhere).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (e.metaKey || e.ctrlKey || e.altKey) return;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
      if (e.key === 'e' && c.status !== 'resolved') void patch({ status: 'resolved' });
      else if (e.key === 'a' && c.assignee !== session.agent) void assign(session.agent);
      else if (e.key === 'r') {
        e.preventDefault();
        document.querySelector<HTMLTextAreaElement>('.composer textarea')?.focus();
      } else return;
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  // A failed reply sent again: a new message (the failed one stays, with its reason), on the same
  // channel, with its own idempotency key.
  const retry = async (m: Message, text: string) => {
    const r = await api.POST('/conversations/{id}/messages', {
      params: { path: { id: c.id }, header: { 'Idempotency-Key': `retry-${m.id}` } },
      body: { text, channel: m.channel },
    });
    if (r.data) {
      const sent = r.data.message;
      setMessages((l) => merge(l, sent));
    } else setError(errorText(r.error, r.response));
  };

  // Split: this message and every later one become a new conversation (another topic); merge: this
  // conversation's messages move into another of the contact's. Both answer where things went.
  const [moved, setMoved] = useState<string | null>(null);
  const split = async (m: Message) => {
    const r = await api.POST('/conversations/{id}/split', {
      params: { path: { id: c.id } },
      body: { from_message: m.id },
    });
    if (!r.data) return setError(errorText(r.error, r.response));
    const body = r.data;
    setMessages((l) => l.filter((x) => x.created_at < m.created_at || (x.created_at === m.created_at && x.id < m.id)));
    setMoved(`${body.moved} message(s) moved to a new conversation.`);
    onChanged(body.source);
    onChanged(body.conversation);
  };
  const mergeInto = async (into: string) => {
    const r = await api.POST('/conversations/{id}/merge', { params: { path: { id: c.id } }, body: { into } });
    if (!r.data) return setError(errorText(r.error, r.response));
    setMoved(`${r.data.moved} message(s) moved into the other conversation.`);
    onChanged(r.data.source);
    onChanged(r.data.conversation);
  };

  const viewers = [...(activity.viewing.get(c.id)?.values() ?? [])];
  const typing = activity.typing.get(c.id);
  const channel = lastChannel(c);
  const clocks = [c.sla?.response, c.sla?.resolution].filter((k): k is Schemas['Clock'] => !!k && !!k.due_at && !k.stopped_at);

  return (
    <div class="conversation">
      <header class="conv-head">
        <div>
          <h1>
            <span class={`chip chip-${channel ?? 'none'}`}>{channelLabel(channel)}</span> {profile?.contact.name ?? counterpart(c)}
          </h1>
          <p class="sub">
            {c.status} · {c.assignee ? (c.assignee === session.agent ? 'assigned to you' : `assigned to ${c.assignee}`) : 'unassigned'} ·{' '}
            {c.message_count} messages
            {clocks.map((k) => (
              <span key={k.kind} class={`sla${Date.parse(k.due_at ?? '') < now ? ' overdue' : ''}`}>
                {' '}
                · {k.kind.replace(/_/g, ' ')} {clockText(k.due_at ?? '', now)}
              </span>
            ))}
          </p>
          <Tags tags={c.tags ?? []} onChange={(tags) => void patch({ tags })} />
          {c.csat?.score != null && (
            <p class="sub">
              Satisfaction: {c.csat.score} / 5{c.csat.comment ? ` “${c.csat.comment}”` : ''}
            </p>
          )}
          {viewers.length > 0 && (
            <p class="viewing" role="status">
              {viewers.join(', ')} {viewers.length === 1 ? 'is' : 'are'} viewing
            </p>
          )}
        </div>
        <div class="actions">
          {c.assignee !== session.agent && (
            <button type="button" onClick={() => void assign(session.agent)}>
              Assign to me
            </button>
          )}
          <Transfer api={api} me={session.agent} onTransfer={(agent, note) => void assign(agent, note)} />
          {c.status === 'resolved' ? (
            <button type="button" onClick={() => void patch({ status: 'open' })}>
              Reopen
            </button>
          ) : (
            <>
              <button type="button" onClick={() => void patch({ snoozed_until: new Date(Date.now() + 3600_000).toISOString() })}>
                Snooze 1 h
              </button>
              <button type="button" class="primary" onClick={() => void patch({ status: 'resolved' })}>
                Resolve
              </button>
            </>
          )}
          <label>
            <span class="visually-hidden">Priority</span>
            <select value={c.priority} onChange={(e) => void patch({ priority: e.currentTarget.value as Schemas['Priority'] })}>
              {(['low', 'normal', 'high', 'urgent'] as const).map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
        </div>
      </header>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {moved && (
        <p role="status" class="notice">
          {moved}
        </p>
      )}
      <div class="body">
        <ol class="messages" aria-label="Messages">
          {messages.map((m) => (
            <MessageItem
              key={m.id}
              api={api}
              message={m}
              onRetry={(text) => void retry(m, text)}
              onSplit={m.direction === 'inbound' && m.id !== messages[0]?.id ? () => void split(m) : undefined}
            />
          ))}
          {activity.contactTyping.has(c.id) && <li class="typing">The customer is typing…</li>}
          {typing && <li class="typing">{typing} is typing…</li>}
        </ol>
        <aside class="contact" aria-label="Contact">
          <h2>Contact</h2>
          {profile ? (
            <>
              <p>{profile.contact.name ?? 'No name yet'}</p>
              <ul class="identities">
                {profile.contact.identities.map((i) => (
                  <li key={`${i.kind}:${i.value}`}>
                    <span class="kind">{i.kind}</span> {i.value}
                    {i.consent === 'opted_out' && <span class="optout"> opted out</span>}
                  </li>
                ))}
              </ul>
              {profile.contact.nps?.score != null && <p>NPS: {profile.contact.nps.score} / 10</p>}
              <Suggestions api={api} contactId={c.contact_id} />
              <h3>Conversations</h3>
              <ul>
                {profile.conversations.map((p) => (
                  <li key={p.id}>
                    {p.id === c.id ? 'this one' : p.status} · {p.channel ? channelLabel(p.channel) : ''} ·{' '}
                    {new Date(p.last_activity_at).toLocaleDateString()}
                    {p.id !== c.id && !c.merged_into && (
                      <>
                        {' '}
                        <button type="button" class="link" onClick={() => void mergeInto(p.id)}>
                          Merge the open one into this
                        </button>
                      </>
                    )}
                  </li>
                ))}
              </ul>
            </>
          ) : (
            <p>Loading…</p>
          )}
          <h2>Notes</h2>
          <ul class="notes">
            {notes.map((n) => (
              <li key={n.id}>
                <strong>{n.author}</strong> {n.text}
              </li>
            ))}
          </ul>
          <NoteForm api={api} conversationId={c.id} onAdded={(n) => setNotes((l) => [...l.filter((x) => x.id !== n.id), n])} />
        </aside>
      </div>
      <Composer key={c.id} api={api} conversation={c} socket={socket} onSent={(m) => setMessages((l) => merge(l, m))} />
    </div>
  );
}

function MessageItem(props: { api: Api; message: Message; onRetry(text: string): void; onSplit?: () => void }) {
  const { api, message: m, onRetry, onSplit } = props;
  const mine = m.direction === 'outbound';
  const tick = TICK[m.status];
  const reason = failureReason(m);
  return (
    <li class={`msg ${mine ? 'out' : 'in'}`} data-message={m.id}>
      <div class="bubble">
        {m.text && <p class="text">{m.text}</p>}
        {(m.attachments ?? []).map((a, i) => (
          <AttachmentView key={i} api={api} message={m} index={i} contentType={a.content_type} filename={a.filename ?? null} />
        ))}
      </div>
      <div class="msg-meta">
        <span class={`chip chip-${m.channel}`}>{channelLabel(m.channel)}</span>
        <time dateTime={m.created_at}>{new Date(m.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</time>
        {mine && (
          <span class={`tick tick-${m.status}`} data-status={m.status} title={reason ?? tick.label}>
            {tick.mark} {tick.label}
          </span>
        )}
        {reason && <span class="reason">{reason}</span>}
        {mine && (m.status === 'failed' || m.status === 'undelivered') && m.text && (
          <button type="button" class="link" onClick={() => onRetry(m.text ?? '')}>
            Retry
          </button>
        )}
        {m.cost && <span class="cost">{money(m.cost.actual_micros ?? m.cost.provider_micros, m.cost.currency)}</span>}
        {onSplit && (
          <button type="button" class="link split" onClick={onSplit} title="This message and every later one become a new conversation">
            Split from here
          </button>
        )}
      </div>
    </li>
  );
}

/** A stored file: a picture previews through a short-lived presigned link; others download. */
function AttachmentView(props: { api: Api; message: Message; index: number; contentType: string; filename: string | null }) {
  const { api, message, index, contentType, filename } = props;
  const [url, setUrl] = useState<string | null>(null);
  const image = contentType.startsWith('image/');
  const fetchLink = async () => {
    const r = await api.GET('/conversations/{id}/messages/{message_id}/attachments/{index}', {
      params: { path: { id: message.conversation_id, message_id: message.id, index } },
    });
    return r.data?.url ?? null;
  };
  useEffect(() => {
    if (image) void fetchLink().then(setUrl);
    // The link is fetched once per message view; it is valid long enough to look at it.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [message.id, index]);
  const label = filename ?? `${contentType} file`;
  return (
    <div class="file">
      {image && url && <img src={url} alt={filename ?? 'picture from the customer'} loading="lazy" />}
      <button
        type="button"
        class="link"
        onClick={() =>
          void fetchLink().then((u) => {
            if (u) window.open(u, '_blank', 'noopener');
          })
        }
      >
        Download {label}
      </button>
    </div>
  );
}

function NoteForm({ api, conversationId, onAdded }: { api: Api; conversationId: string; onAdded(n: Note): void }) {
  const [text, setText] = useState('');
  const [key, setKey] = useState(newKey);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      class="note-form"
      onSubmit={async (e) => {
        e.preventDefault();
        if (!text.trim()) return;
        const r = await api.POST('/conversations/{id}/notes', {
          params: { path: { id: conversationId }, header: { 'Idempotency-Key': key } },
          body: { text },
        });
        if (r.data) {
          onAdded(r.data.note);
          setKey(newKey());
          setText('');
          setError(null);
        } else setError(errorText(r.error, r.response));
      }}
    >
      <label>
        <span class="visually-hidden">Internal note</span>
        <textarea rows={2} value={text} placeholder="Internal note (@name mentions)" onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <button type="submit">Add note</button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

function Tags({ tags, onChange }: { tags: string[]; onChange(t: Schemas['UpdateConversationTags']): void }) {
  const [adding, setAdding] = useState('');
  return (
    <div class="tags">
      {tags.map((t) => (
        <span class="tag" key={t}>
          {t}{' '}
          <button type="button" class="link" aria-label={`Remove tag ${t}`} onClick={() => onChange({ remove: [t] })}>
            ×
          </button>
        </span>
      ))}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const t = adding.trim().toLowerCase();
          if (t) onChange({ add: [t] });
          setAdding('');
        }}
      >
        <label>
          <span class="visually-hidden">Add a tag</span>
          <input class="tag-input" value={adding} placeholder="+ tag" onInput={(e) => setAdding(e.currentTarget.value)} />
        </label>
      </form>
    </div>
  );
}

/** Transfer to another agent, with a note for them (the assignment is audited with it). */
function Transfer({ api, me, onTransfer }: { api: Api; me: string; onTransfer(agent: string, note: string): void }) {
  const [agents, setAgents] = useState<Schemas['AgentState'][] | null>(null);
  const [to, setTo] = useState('');
  const [note, setNote] = useState('');
  return (
    <details
      class="transfer"
      onToggle={(e) => {
        if ((e.currentTarget as HTMLDetailsElement).open && !agents)
          void api.GET('/agents').then((r) => setAgents((r.data?.items ?? []).filter((a) => a.id !== me)));
      }}
    >
      <summary>Transfer</summary>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (to) onTransfer(to, note);
        }}
      >
        <label>
          To
          <select value={to} onChange={(e) => setTo(e.currentTarget.value)} required>
            <option value="">Choose an agent</option>
            {(agents ?? []).map((a) => (
              <option key={a.id} value={a.id}>
                {a.id} ({a.presence.replace(/_/g, ' ')}, {(a.load / 100).toFixed(1)} / {(a.capacity / 100).toFixed(1)})
              </option>
            ))}
          </select>
        </label>
        <label>
          Note
          <input value={note} onInput={(e) => setNote(e.currentTarget.value)} placeholder="What they need to know" />
        </label>
        <button type="submit">Transfer</button>
      </form>
    </details>
  );
}

type SuggestionList = NonNullable<Awaited<ReturnType<typeof suggestionsOf>>['data']>['suggestions'];
const suggestionsOf = (api: Api, id: string) => api.GET('/contacts/{id}/suggestions', { params: { path: { id } } });

/** Contacts that are probably the same person (shared identities, similar names): one click merges. */
function Suggestions({ api, contactId }: { api: Api; contactId: string }) {
  const [items, setItems] = useState<SuggestionList>([]);
  const [done, setDone] = useState<string | null>(null);
  const [merged, setMerged] = useState<Set<string>>(new Set());
  useEffect(() => {
    void suggestionsOf(api, contactId).then((r) => setItems(r.data?.suggestions ?? []));
  }, [api, contactId]);
  if (!items.some((s) => !merged.has(s.contact.id)) && !done) return null;
  return (
    <div class="suggestions-panel">
      <h3>Possibly the same person</h3>
      {done && <p role="status">{done}</p>}
      <ul>
        {items.filter((s) => !merged.has(s.contact.id)).map((s) => (
          <li key={s.contact.id}>
            {s.contact.name ?? s.contact.identities[0]?.value ?? s.contact.id}{' '}
            <button
              type="button"
              class="link"
              onClick={async () => {
                const r = await api.POST('/contacts/{id}/merge', { params: { path: { id: s.contact.id } }, body: { into: contactId } });
                setDone(r.data ? `Merged: ${r.data.moved} conversation(s) moved here.` : errorText(r.error, r.response));
                if (r.data) setMerged((m) => new Set(m).add(s.contact.id));
              }}
            >
              Merge into this contact
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
