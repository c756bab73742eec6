// The conversation list, virtualised with @tanstack/virtual-core: only the rows in view (plus a
// few) are in the DOM, so 10,000 conversations scroll as smoothly as ten.
import { elementScroll, observeElementOffset, observeElementRect, Virtualizer } from '@tanstack/virtual-core';
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from 'preact/hooks';
import type { Conversation } from '../../src/api/client';
import type { Presence } from './App';
import { channelLabel, clockText, counterpart, lastChannel, timeAgo } from './format';
import { dueAt } from './inbox';

const ROW = 68;

interface Props {
  items: Conversation[];
  selected: string | null;
  onSelect(id: string): void;
  /** The rows in view reach the last 20: time to fetch the next page. */
  onEndReached?(): void;
  activity: Presence;
  me: string;
}

export function InboxList({ items, selected, onSelect, onEndReached, activity, me }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const [virtualizer] = useState(
    () =>
      new Virtualizer<HTMLDivElement, HTMLElement>({
        count: 0,
        getScrollElement: () => scroller.current,
        estimateSize: () => ROW,
        overscan: 8,
        scrollToFn: elementScroll,
        observeElementRect,
        observeElementOffset,
        onChange: () => rerender(undefined as never),
      }),
  );
  virtualizer.setOptions({ ...virtualizer.options, count: items.length, getItemKey: (i) => items[i]?.id ?? i });
  useLayoutEffect(() => virtualizer._didMount(), [virtualizer]);
  useLayoutEffect(() => virtualizer._willUpdate());
  const last = virtualizer.getVirtualItems().at(-1)?.index ?? -1;
  useEffect(() => {
    if (items.length > 0 && last >= items.length - 20) onEndReached?.();
  }, [last, items.length, onEndReached]);
  // A clock that ticks the relative times and SLA countdowns.
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(t);
  }, []);

  return (
    <div class="list" ref={scroller}>
      <div style={{ height: `${virtualizer.getTotalSize()}px`, position: 'relative' }}>
        {virtualizer.getVirtualItems().map((row) => {
          const c = items[row.index];
          if (!c) return null;
          const due = dueAt(c);
          const viewers = [...(activity.viewing.get(c.id)?.values() ?? [])];
          const channel = lastChannel(c);
          return (
            <button
              type="button"
              key={c.id}
              aria-current={c.id === selected ? 'true' : undefined}
              class={`row${c.id === selected ? ' selected' : ''}${c.unread_count > 0 ? ' unread' : ''}`}
              style={{ position: 'absolute', top: 0, left: 0, right: 0, height: `${ROW}px`, transform: `translateY(${row.start}px)` }}
              onClick={() => onSelect(c.id)}
              data-conversation={c.id}
            >
              <span class="line">
                <span class={`chip chip-${channel ?? 'none'}`}>{channelLabel(channel)}</span>
                <span class="who">{counterpart(c)}</span>
                <span class="when">{timeAgo(c.last_activity_at, now)}</span>
              </span>
              <span class="line meta">
                {c.unread_count > 0 && <span class="badge" aria-label={`${c.unread_count} unread`}>{c.unread_count}</span>}
                {c.priority !== 'normal' && <span class={`prio prio-${c.priority}`}>{c.priority}</span>}
                <span class="owner">{c.assignee ? (c.assignee === me ? 'You' : c.assignee) : 'Unassigned'}</span>
                {due !== null && <span class={`sla${due < now ? ' overdue' : ''}`}>{clockText(new Date(due).toISOString(), now)}</span>}
                {viewers.length > 0 && <span class="viewing">{viewers.join(', ')} viewing</span>}
                {(c.tags ?? []).slice(0, 3).map((t) => (
                  <span class="tag" key={t}>
                    {t}
                  </span>
                ))}
              </span>
            </button>
          );
        })}
      </div>
    </div>
  );
}
