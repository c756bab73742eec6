// Small presentation helpers shared by the console's screens.
import type { Channel, Conversation, DeliveryStatus, Message } from '../../src/api/client';

export const CHANNEL_LABEL: Record<Channel, string> = {
  sms: 'SMS',
  whatsapp: 'WhatsApp',
  email: 'Email',
  messenger: 'Messenger',
  instagram: 'Instagram',
  telegram: 'Telegram',
  webchat: 'Web chat',
  voice: 'Voicemail',
} as Record<Channel, string>;

export function channelLabel(c: Channel | undefined | null): string {
  return c ? (CHANNEL_LABEL[c] ?? c) : '—';
}

/** Who the conversation is with, as the inbox shows it without another request. */
export function counterpart(c: Conversation): string {
  return c.last_inbound?.contact_address ?? c.contact_id;
}

export function lastChannel(c: Conversation): Channel | null {
  return c.last_inbound?.channel ?? null;
}

export function timeAgo(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return 'now';
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function clockText(dueIso: string, now = Date.now()): string {
  const s = Math.round((Date.parse(dueIso) - now) / 1000);
  const abs = Math.abs(s);
  const text = abs < 3600 ? `${Math.floor(abs / 60)}m ${abs % 60}s` : `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m`;
  return s >= 0 ? `${text} left` : `${text} overdue`;
}

export const TICK: Record<DeliveryStatus, { mark: string; label: string }> = {
  received: { mark: '', label: 'received' },
  queued: { mark: '◷', label: 'queued' },
  sending: { mark: '◷', label: 'sending' },
  sent: { mark: '✓', label: 'sent' },
  delivered: { mark: '✓✓', label: 'delivered' },
  read: { mark: '✓✓', label: 'read' },
  undelivered: { mark: '!', label: 'undelivered' },
  failed: { mark: '!', label: 'failed' },
};

/** Why a message failed, as the provider said (kept in its status history). */
export function failureReason(m: Message): string | null {
  const last = [...(m.status_history ?? [])].reverse().find((h) => h.status === 'failed' || h.status === 'undelivered');
  if (!last) return null;
  return [last.error_code, last.error_message].filter(Boolean).join(': ') || null;
}

export function money(micros: number | undefined | null, currency = 'USD'): string {
  if (micros == null) return '';
  return new Intl.NumberFormat('en', { style: 'currency', currency, maximumFractionDigits: 4 }).format(micros / 1e6);
}

/** A new idempotency key: one per draft, reused by every retry of that draft. */
export function newKey(): string {
  return crypto.randomUUID();
}
