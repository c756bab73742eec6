// The inbox list with N synthetic conversations (?n=10000), for web/scripts/bench-inbox.mjs: the
// same component the console renders, the same styles, no network.
import { render } from 'preact';
import type { Conversation } from '../src/api/client';
import { InboxList } from '../console/src/InboxList';
import '../console/src/styles.css';

const n = Number(new URLSearchParams(location.search).get('n') ?? '10000');
const channels = ['sms', 'whatsapp', 'email', 'webchat', 'messenger'] as const;
const t0 = Date.parse('2026-12-01T00:00:00Z');
const items: Conversation[] = Array.from({ length: n }, (_, i) => {
  const channel = channels[i % channels.length]!;
  const at = new Date(t0 + (n - i) * 60_000).toISOString();
  return {
    id: `01BENCH${String(i).padStart(19, '0')}`,
    workspace: 'bench',
    contact_id: `c${i}`,
    status: 'open',
    assignee: i % 3 === 0 ? 'alice' : null,
    priority: i % 17 === 0 ? 'high' : 'normal',
    last_inbound: { channel, contact_address: `+1415555${String(i % 10000).padStart(4, '0')}`, our_address: '+14155550100' },
    last_activity_at: at,
    created_at: at,
    unread_count: i % 4,
    message_count: 3,
    tags: i % 5 === 0 ? ['vip'] : [],
    version: 1,
  } as Conversation;
});
const activity = { viewing: new Map(), typing: new Map(), contactTyping: new Set<string>() };
const start = performance.now();
const root = document.getElementById('app')!;
render(<InboxList items={items} selected={null} onSelect={() => {}} activity={activity} me="alice" />, root);
requestAnimationFrame(() => {
  (window as unknown as { benchReady: unknown }).benchReady = { n, firstRenderMs: performance.now() - start };
});
