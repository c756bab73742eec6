// The supervisor's live view: every agent's presence and load against capacity, the waiting queue
// and what breaches soonest. Presence and assignment pushes refresh it as they happen.
import { useEffect, useState } from 'preact/hooks';
import { errorText, type Api, type Conversation, type Schemas } from '../../src/api/client';
import type { PushListener } from './App';
import { Chart } from './Chart';
import { clockText, counterpart, timeAgo } from './format';
import { dueAt } from './inbox';

type Agent = Schemas['AgentState'];

export default function TeamPage({ api, subscribe, onOpen }: { api: Api; subscribe(l: PushListener): () => void; onOpen(id: string): void }) {
  const [agents, setAgents] = useState<Agent[]>([]);
  const [queue, setQueue] = useState<Conversation[]>([]);
  const [breaching, setBreaching] = useState<Conversation[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    void (async () => {
      const [a, q, b] = await Promise.all([
        api.GET('/agents'),
        api.GET('/conversations', { params: { query: { view: 'unassigned', limit: 100 } } }),
        api.GET('/conversations', { params: { query: { view: 'all', sort: 'breaching', limit: 20 } } }),
      ]);
      if (!live) return;
      if (a.data) setAgents([...a.data.items].sort((x, y) => x.id.localeCompare(y.id)));
      else setError(errorText(a.error, a.response));
      if (q.data) setQueue(q.data.items);
      if (b.data) setBreaching(b.data.items.filter((c) => dueAt(c) !== null));
    })();
    return () => {
      live = false;
    };
  }, [api, tick]);

  // Presence, assignments and SLA events change this page: re-read (a few small requests).
  useEffect(
    () =>
      subscribe((push) => {
        const t = push.event.type;
        if (t === 'presence_changed' || t === 'conversation_changed' || t === 'sla_warning' || t === 'sla_breached' || (t === 'message_created' && push.event.direction === 'inbound'))
          setTick((n) => n + 1);
      }),
    [subscribe],
  );

  const now = Date.now();
  const online = agents.filter((a) => a.presence === 'online').length;
  return (
    <div class="page">
      <h1>Team</h1>
      {error && <p role="alert">{error}</p>}
      <section class="cards" aria-label="Now">
        <div class="card">
          <span class="big">{online}</span> of {agents.length} agents online
        </div>
        <div class="card">
          <span class="big">{queue.length}</span> waiting unassigned
        </div>
        <div class="card">
          <span class="big">{breaching.filter((c) => (dueAt(c) ?? Infinity) < now).length}</span> past their service level
        </div>
      </section>
      {agents.length > 0 && (
        <Chart
          title="Load against capacity (conversations)"
          x={agents.map((a) => a.id)}
          bars
          series={[
            { label: 'Load', values: agents.map((a) => a.load / 100), color: '#2450d8' },
            { label: 'Capacity', values: agents.map((a) => a.capacity / 100), color: '#9aa4b2' },
          ]}
        />
      )}
      <table>
        <caption>Agents</caption>
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Presence</th>
            <th scope="col">Teams</th>
            <th scope="col">Load</th>
            <th scope="col">Last assigned</th>
          </tr>
        </thead>
        <tbody>
          {agents.map((a) => (
            <tr key={a.id}>
              <td>{a.id}</td>
              <td>
                <span class={`presence-dot presence-${a.presence}`}>{a.presence.replace(/_/g, ' ')}</span>
              </td>
              <td>{a.teams.join(', ') || '—'}</td>
              <td>
                <meter min={0} max={Math.max(1, a.capacity)} value={a.load} aria-label={`${a.id} load`} /> {(a.load / 100).toFixed(1)} /{' '}
                {(a.capacity / 100).toFixed(1)}
              </td>
              <td>{a.last_assigned_at ? timeAgo(a.last_assigned_at, now) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <table>
        <caption>Breaching soonest</caption>
        <thead>
          <tr>
            <th scope="col">Conversation</th>
            <th scope="col">Owner</th>
            <th scope="col">Due</th>
          </tr>
        </thead>
        <tbody>
          {breaching.map((c) => (
            <tr key={c.id}>
              <td>
                <button type="button" class="link" onClick={() => onOpen(c.id)}>
                  {counterpart(c)}
                </button>
              </td>
              <td>{c.assignee ?? 'unassigned'}</td>
              <td class={(dueAt(c) ?? 0) < now ? 'overdue' : ''}>{clockText(new Date(dueAt(c) ?? now).toISOString(), now)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
