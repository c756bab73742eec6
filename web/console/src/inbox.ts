// The inbox's rules, kept pure so the socket and the REST API update one list the same way:
// which view a conversation belongs to, and the order the list shows.
import type { Channel, Conversation } from '../../src/api/client';

export type View = 'mine' | 'unassigned' | 'all' | 'breaching';

export interface Filters {
  view: View;
  status: 'open' | 'snoozed' | 'resolved';
  channel: Channel | 'any';
}

export function belongs(c: Conversation, f: Filters, me: string): boolean {
  if (c.merged_into) return false;
  const status = c.status === 'pending' ? 'open' : c.status;
  if (status !== f.status) return false;
  if (f.channel !== 'any' && !(f.channel in (c.channels ?? {})) && c.last_inbound?.channel !== f.channel)
    return false;
  switch (f.view) {
    case 'mine':
      return c.assignee === me;
    case 'unassigned':
      return !c.assignee;
    case 'breaching':
      return dueAt(c) !== null;
    case 'all':
      return true;
  }
}

/** The soonest running service-level clock's due time (ms), if any. */
export function dueAt(c: Conversation): number | null {
  const due = [c.sla?.response?.due_at, c.sla?.resolution?.due_at]
    .filter((d): d is string => typeof d === 'string')
    .map((d) => Date.parse(d));
  return due.length ? Math.min(...due) : null;
}

export function sortFor(view: View): (a: Conversation, b: Conversation) => number {
  if (view === 'breaching') return (a, b) => (dueAt(a) ?? Infinity) - (dueAt(b) ?? Infinity) || a.id.localeCompare(b.id);
  return (a, b) => b.last_activity_at.localeCompare(a.last_activity_at) || b.id.localeCompare(a.id);
}

/** Replace a conversation by a newer version of it (versions only grow; a late push never undoes). */
export function upsert(list: Conversation[], c: Conversation, f: Filters, me: string): Conversation[] {
  const i = list.findIndex((x) => x.id === c.id);
  const current = i >= 0 ? list[i] : undefined;
  if (current && current.version > c.version) return list;
  const rest = i >= 0 ? [...list.slice(0, i), ...list.slice(i + 1)] : list;
  if (!belongs(c, f, me)) return rest;
  return [...rest, c].sort(sortFor(f.view));
}
