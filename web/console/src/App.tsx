import type { ComponentType } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { apiClient, errorText, type AgentPush, type Api, type Channel, type Conversation } from '../../src/api/client';
import type { Auth, Session } from './auth';
import type { ConsoleConfig } from './config';
import { ConversationPane } from './ConversationPane';
import { CHANNEL_LABEL } from './format';
import { InboxList } from './InboxList';
import { belongs, sortFor, upsert, type Filters, type View } from './inbox';
import { AgentSocket, type SocketState } from './socket';

interface Props {
  config: ConsoleConfig;
  auth: Auth;
  session: Session | null;
}

export function App({ config, auth, session }: Props) {
  if (!session) return <SignIn config={config} auth={auth} />;
  return <Console config={config} auth={auth} session={session} />;
}

function SignIn({ config, auth }: { config: ConsoleConfig; auth: Auth }) {
  const [error, setError] = useState<string | null>(null);
  const [dev, setDev] = useState('');
  return (
    <main class="signin">
      <h1>Switchboard</h1>
      <p>One inbox for every channel your customers use.</p>
      {config.oidc && (
        <button class="primary" type="button" onClick={() => auth.signIn().catch((e: Error) => setError(e.message))}>
          Sign in
        </button>
      )}
      {config.dev_tokens && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            location.hash = `dev_token=${encodeURIComponent(dev.trim())}`;
            location.reload();
          }}
        >
          <label>
            Development token (local stacks only)
            <input value={dev} onInput={(e) => setDev(e.currentTarget.value)} />
          </label>
          <button type="submit">Use token</button>
        </form>
      )}
      {error && <p role="alert">{error}</p>}
    </main>
  );
}

const VIEWS: { id: View; label: string }[] = [
  { id: 'mine', label: 'Mine' },
  { id: 'unassigned', label: 'Unassigned' },
  { id: 'all', label: 'All' },
  { id: 'breaching', label: 'Breaching soon' },
];

export type PushListener = (push: AgentPush) => void;

type Page = 'inbox' | 'team' | 'reports' | 'finance';

/** What every page besides the inbox is given. */
export interface PageProps {
  api: Api;
  apiUrl: string;
  token: string;
  subscribe(l: PushListener): () => void;
  onOpen(id: string): void;
}

/** The pages a person's roles open (finance has no inbox rights; agents see no reports). */
export function pagesFor(roles: string[]): Page[] {
  const has = (r: string) => roles.includes(r);
  const pages: Page[] = [];
  if (has('agent') || has('supervisor') || has('admin')) pages.push('inbox');
  if (has('supervisor') || has('admin')) pages.push('team', 'reports');
  if (has('finance') || has('supervisor') || has('admin')) pages.push('finance');
  return pages;
}

const PAGE_LABEL: Record<Page, string> = { inbox: 'Inbox', team: 'Team', reports: 'Reports', finance: 'Costs' };

function pageFromHash(pages: Page[]): Page {
  const h = location.hash.replace(/^#\/?/, '') as Page;
  return pages.includes(h) ? h : (pages[0] ?? 'inbox');
}

/** The report pages load on first use (their charts are most of their weight). */
function useLazyPage(page: Page): ComponentType<PageProps> | null {
  const [loaded, setLoaded] = useState<Partial<Record<Page, ComponentType<PageProps>>>>({});
  useEffect(() => {
    if (page === 'inbox' || loaded[page]) return;
    const load = { team: () => import('./TeamPage'), reports: () => import('./ReportsPage'), finance: () => import('./FinancePage') }[page];
    void load().then((m) => setLoaded((l) => ({ ...l, [page]: m.default as ComponentType<PageProps> })));
  }, [page, loaded]);
  return loaded[page] ?? null;
}

/** Who is viewing or typing in each conversation (seed 001's soft lock), from agents' activity. */
export interface Presence {
  viewing: Map<string, Map<string, string>>;
  typing: Map<string, string | null>;
  contactTyping: Set<string>;
}

function Console({ config, auth, session }: { config: ConsoleConfig; auth: Auth; session: Session }) {
  const api: Api = useMemo(() => apiClient(config.api_url, () => session.token), [config.api_url, session.token]);
  const pages = useMemo(() => pagesFor(session.roles), [session.roles]);
  const [page, setPage] = useState<Page>(() => pageFromHash(pages));
  useEffect(() => {
    const onHash = () => setPage(pageFromHash(pages));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, [pages]);
  const Lazy = useLazyPage(page);
  const inboxRights = pages.includes('inbox');
  const [filters, setFilters] = useState<Filters>({ view: 'mine', status: 'open', channel: 'any' });
  const [list, setList] = useState<Conversation[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelectedId] = useState<string | null>(null);
  // The open conversation stays open when it leaves the list (resolved, transferred).
  const [open, setOpen] = useState<Conversation | null>(null);
  const [socketState, setSocketState] = useState<SocketState>('connecting');
  const [presence, setPresence] = useState<'online' | 'away'>('online');
  const [activity, setActivity] = useState<Presence>({ viewing: new Map(), typing: new Map(), contactTyping: new Set() });
  const listeners = useRef(new Set<PushListener>());
  const filtersRef = useRef(filters);
  filtersRef.current = filters;
  const presenceRef = useRef(presence);
  presenceRef.current = presence;

  // The list in pages of 100: the first on open, the next when the list scrolls near its end, so a
  // view of 10,000 conversations costs one request to open and the DOM holds only the rows in view.
  const next = useRef<{ cursor: string | null; loading: boolean }>({ cursor: null, loading: false });
  const fetchPage = useCallback(
    async (first: boolean) => {
      const f = filtersRef.current;
      if (!first && (next.current.loading || !next.current.cursor)) return;
      next.current.loading = true;
      if (first) setLoading(true);
      const query =
        f.view === 'breaching'
          ? { view: 'all', status: f.status, sort: 'breaching', limit: 100 }
          : { view: f.view, status: f.status, limit: 100 };
      const cursor = first ? null : next.current.cursor;
      const { data, error: e, response } = await api.GET('/conversations', {
        params: { query: { ...query, ...(cursor ? { cursor } : {}) } },
      });
      next.current.loading = false;
      if (filtersRef.current !== f) return;
      setLoading(false);
      if (!data) {
        setError(errorText(e, response));
        return;
      }
      next.current.cursor = data.next_cursor ?? null;
      setError(null);
      const items = data.items.filter((c) => belongs(c, f, session.agent));
      setList((l) => {
        if (first) return items.sort(sortFor(f.view));
        const have = new Set(l.map((c) => c.id));
        return [...l, ...items.filter((c) => !have.has(c.id))].sort(sortFor(f.view));
      });
    },
    [api, session.agent],
  );
  const load = useCallback(() => fetchPage(true), [fetchPage]);
  const loadMore = useCallback(() => void fetchPage(false), [fetchPage]);

  useEffect(() => {
    if (inboxRights) void load();
  }, [filters, load, inboxRights]);

  const socket = useMemo(
    () =>
      new AgentSocket(config.socket_url, () => session.token, {
        onState: setSocketState,
        onOpen: () => {
          if (!inboxRights) return;
          socket.send({ action: 'presence', status: presenceRef.current });
          void load();
        },
        onPush: (push) => {
          const c = push.conversation;
          if (c) {
            setList((l) => upsert(l, c, filtersRef.current, session.agent));
            setOpen((o) => (o && o.id === c.id && c.version >= o.version ? c : o));
          }
          const ev = push.event;
          if (ev.type === 'agent_activity' && ev.agent !== session.agent) {
            setActivity((a) => {
              const viewing = new Map(a.viewing);
              const typing = new Map(a.typing);
              const who = new Map(viewing.get(ev.conversation_id) ?? []);
              if (ev.activity === 'viewing') who.set(ev.agent, ev.name ?? ev.agent);
              if (ev.activity === 'stopped_viewing') who.delete(ev.agent);
              viewing.set(ev.conversation_id, who);
              if (ev.activity === 'typing') typing.set(ev.conversation_id, ev.name ?? ev.agent);
              if (ev.activity === 'stopped_typing') typing.set(ev.conversation_id, null);
              return { ...a, viewing, typing };
            });
          }
          if (ev.type === 'contact_typing') {
            setActivity((a) => {
              const contactTyping = new Set(a.contactTyping);
              if (ev.typing) contactTyping.add(ev.conversation_id);
              else contactTyping.delete(ev.conversation_id);
              return { ...a, contactTyping };
            });
          }
          for (const l of listeners.current) l(push);
        },
      }),
    [config.socket_url, session.token, session.agent, load, inboxRights],
  );

  useEffect(() => {
    socket.start();
    return () => socket.stop();
  }, [socket]);

  // The soft lock: this tab tells the others which conversation it shows.
  useEffect(() => {
    socket.send({ action: 'viewing', conversation_id: selected });
  }, [selected, socket, socketState]);

  const setSelected = useCallback(
    (id: string | null) => {
      setSelectedId(id);
      setOpen(id ? (list.find((c) => c.id === id) ?? null) : null);
    },
    [list],
  );

  const subscribe = useCallback((l: PushListener) => {
    listeners.current.add(l);
    return () => listeners.current.delete(l);
  }, []);

  // Keyboard: j/k move through the list, Escape closes the conversation.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
      if (e.key === 'j' || e.key === 'k') {
        const i = list.findIndex((c) => c.id === selected);
        const next = list[Math.max(0, Math.min(list.length - 1, i + (e.key === 'j' ? 1 : -1)))];
        if (next) setSelected(next.id);
      } else if (e.key === 'Escape') {
        setSelected(null);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [list, selected, setSelected]);

  const unread = list.reduce((n, c) => n + (c.unread_count > 0 ? 1 : 0), 0);
  const current = open;
  const openConversation = async (id: string) => {
    const r = await api.GET('/conversations/{id}', { params: { path: { id } } });
    if (!r.data) return;
    location.hash = '#/inbox';
    setSelectedId(id);
    setOpen(r.data.conversation);
  };
  const togglePresence = () => {
    const next = presence === 'online' ? 'away' : 'online';
    setPresence(next);
    socket.send({ action: 'presence', status: next });
  };

  return (
    <div class="console">
      <header class="topbar">
        <strong class="brand">Switchboard</strong>
        <span class={`live live-${socketState}`} role="status">
          {socketState === 'live' ? 'Live' : socketState === 'connecting' ? 'Connecting…' : 'Offline: reconnecting'}
        </span>
        <nav class="pages" aria-label="Pages">
          {pages.length > 1 &&
            pages.map((p) => (
              <a key={p} href={`#/${p}`} aria-current={p === page ? 'page' : undefined}>
                {PAGE_LABEL[p]}
              </a>
            ))}
        </nav>
        <span class="spacer" />
        {inboxRights && (
          <button type="button" class={`presence presence-${presence}`} onClick={togglePresence} aria-pressed={presence === 'online'}>
            {presence === 'online' ? 'Online' : 'Away'}
          </button>
        )}
        <span class="me">{session.name}</span>
        <button type="button" onClick={() => void auth.signOut()}>
          Sign out
        </button>
      </header>
      {page === 'inbox' ? (
        <>
      <nav class="views" aria-label="Inbox views">
        {VIEWS.map((v) => (
          <button
            type="button"
            key={v.id}
            aria-current={filters.view === v.id ? 'page' : undefined}
            onClick={() => setFilters({ ...filters, view: v.id })}
          >
            {v.label}
            {filters.view === v.id && unread > 0 && <span class="badge" aria-label={`${unread} unread`}>{unread}</span>}
          </button>
        ))}
        <label class="filter">
          Channel
          <select
            value={filters.channel}
            onChange={(e) => setFilters({ ...filters, channel: e.currentTarget.value as Channel | 'any' })}
          >
            <option value="any">Any</option>
            {Object.entries(CHANNEL_LABEL).map(([id, label]) => (
              <option key={id} value={id}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label class="filter">
          Status
          <select
            value={filters.status}
            onChange={(e) => setFilters({ ...filters, status: e.currentTarget.value as Filters['status'] })}
          >
            <option value="open">Open</option>
            <option value="snoozed">Snoozed</option>
            <option value="resolved">Resolved</option>
          </select>
        </label>
      </nav>
      <section class="inbox" aria-label="Conversations">
        {error && <p role="alert">{error}</p>}
        {!loading && list.length === 0 && !error && <p class="empty">Nothing here. New conversations appear live.</p>}
        <InboxList
          items={list}
          selected={selected}
          onSelect={setSelected}
          onEndReached={loadMore}
          activity={activity}
          me={session.agent}
        />
      </section>
      <main class="pane">
        {current ? (
          <ConversationPane
            key={current.id}
            api={api}
            conversation={current}
            session={session}
            socket={socket}
            subscribe={subscribe}
            activity={activity}
            onChanged={(c) => {
              setList((l) => upsert(l, c, filtersRef.current, session.agent));
              setOpen((o) => (o && o.id === c.id && c.version >= o.version ? c : o));
            }}
          />
        ) : (
          <p class="empty">Choose a conversation (j / k move through the list).</p>
        )}
      </main>
        </>
      ) : Lazy ? (
        <main class="page-host">
          <Lazy api={api} apiUrl={config.api_url} token={session.token} subscribe={subscribe} onOpen={(id: string) => void openConversation(id)} />
        </main>
      ) : (
        <main class="page-host">
          <p class="empty">Loading…</p>
        </main>
      )}
    </div>
  );
}
