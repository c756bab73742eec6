// What the browser tests know about the running local stack (infra/scripts/browser-tests.sh starts
// `switchboard-local up` on free ports and names its addresses in SWITCHBOARD_READY), and the
// outside world's side of it: a customer's SMS signed as Twilio signs it, the fake Twilio's record
// of what was sent, sign-in through the local OpenID provider's own page.
import { createHmac, randomInt } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { expect, type Page } from '@playwright/test';

export interface Ready {
  api_url: string;
  console_url: string;
  oidc_issuer: string;
  twilio_url: string;
  twilio_auth_token: string;
  twilio_account_sid: string;
  sms_number: string;
  widget_key: string;
  workspace: string;
}

export const stack: Ready = JSON.parse(
  readFileSync(process.env.SWITCHBOARD_READY ?? '../target/browser-stack.json', 'utf8'),
) as Ready;

const ACCOUNT_SID = () => stack.twilio_account_sid;

/** A customer's number nobody else in this run uses. */
export function customerNumber(): string {
  // A valid US number: the exchange starts with 2-9.
  return `+1415${randomInt(200, 1000)}${randomInt(1000, 10000)}`;
}

/** Twilio's request signature: HMAC-SHA1 over the URL and the sorted form parameters. */
function twilioSignature(url: string, params: Record<string, string>): string {
  const data = Object.keys(params)
    .sort()
    .reduce((s, k) => s + k + params[k], url);
  return createHmac('sha1', stack.twilio_auth_token).update(data).digest('base64');
}

/** A customer texts the workspace's number: the webhook request exactly as Twilio would send it. */
export async function customerTexts(from: string, body: string): Promise<void> {
  const url = `${stack.api_url}/webhooks/twilio/sms`;
  const params: Record<string, string> = {
    MessageSid: `SM${Date.now().toString(16)}${randomInt(1e9).toString(16)}`.padEnd(34, '0').slice(0, 34),
    AccountSid: ACCOUNT_SID(),
    From: from,
    To: stack.sms_number,
    Body: body,
    NumMedia: '0',
    FromCountry: 'US',
  };
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature(url, params) },
    body: new URLSearchParams(params).toString(),
  });
  expect(res.status, await res.text()).toBe(200);
}

/** What the fake Twilio was asked to send to `to` (Twilio's own list API). */
export async function sentTo(to: string): Promise<{ body: string; sid: string }[]> {
  const auth = Buffer.from(`${ACCOUNT_SID()}:${stack.twilio_auth_token}`).toString('base64');
  const res = await fetch(`${stack.twilio_url}/2010-04-01/Accounts/${ACCOUNT_SID()}/Messages.json?To=${encodeURIComponent(to)}`, {
    headers: { authorization: `Basic ${auth}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { messages: { body: string; sid: string }[] }).messages;
}

/** A token for API calls a test makes itself (an admin preparing canned responses, say). */
export function devToken(role: 'agent' | 'admin' | 'supervisor', agent: string): string {
  const bin = process.env.SWITCHBOARD_LOCAL_BIN ?? '../target/debug/switchboard-local';
  return execFileSync(bin, ['token', '--role', role, '--agent', agent, '--workspace', stack.workspace]).toString().trim();
}

export async function api(token: string, method: string, path: string, body?: unknown, key?: string): Promise<unknown> {
  const res = await fetch(`${stack.api_url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...(key ? { 'idempotency-key': key } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  expect(res.ok, `${method} ${path}: ${res.status} ${text}`).toBe(true);
  return text ? JSON.parse(text) : null;
}

/** Signs in to the console through the local OpenID provider's page (authorization code + PKCE). */
export async function signIn(page: Page, login: string): Promise<void> {
  await page.goto(stack.console_url);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('User').fill(login);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Live' })).toBeVisible();
}

/** Runs axe-core (the real library, injected into the page) and returns serious or worse violations. */
export async function seriousViolations(page: Page, include?: string): Promise<string[]> {
  await page.addScriptTag({ path: createRequire(import.meta.url).resolve('axe-core/axe.min.js') });
  const violations = await page.evaluate(async (sel) => {
    const axe = (window as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: { id: string; impact: string; nodes: { target: unknown }[] }[] }> } }).axe;
    const result = await axe.run(sel ? { include: [[sel]] } : document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => JSON.stringify(n.target)) }));
  }, include ?? null);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.targets.join(', ')}`);
}
