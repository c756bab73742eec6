// The agent console against the whole local stack, in Debian's Chromium.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { api, customerNumber, customerTexts, devToken, seriousViolations, sentTo, signIn } from './stack';

const SCREENS = 'test-results/screens';
mkdirSync(SCREENS, { recursive: true });

test('a signed SMS appears live, the agent answers with a canned response, the tick turns to delivered', async ({ page }) => {
  // An admin keeps a canned response with a variable the preview fills for this conversation.
  const shortcut = `/ship${randomUUID().slice(0, 6)}`;
  await api(devToken('admin', 'ada'), 'POST', '/canned-responses', {
    scope: 'workspace',
    shortcut,
    title: 'Shipping today',
    body: 'Hi {{contact.first_name | there}}, your order ships today.',
  });
  await signIn(page, 'alice');
  await expect(page.getByText('Nothing here')).toBeVisible();

  // A customer texts in: Alice is online, so the conversation is routed to her and shows up in
  // "Mine" without a reload, pushed over her socket.
  const customer = customerNumber();
  await customerTexts(customer, 'Where is my order #1234?');
  const row = page.locator('.row', { hasText: customer });
  await expect(row).toBeVisible();
  await expect(row.locator('.chip')).toHaveText('SMS');
  await row.click();
  await expect(page.locator('.msg.in .text')).toHaveText('Where is my order #1234?');
  await page.screenshot({ path: `${SCREENS}/inbox.png` });

  // `/ship…` completes the canned response; choosing it fills the variables.
  const reply = page.getByLabel('Reply');
  await reply.fill(shortcut);
  await expect(page.getByRole('option', { name: /Shipping today/ })).toBeVisible();
  await reply.press('Enter');
  await expect(reply).toHaveValue('Hi there, your order ships today.');
  await expect(page.locator('.preview')).toContainText('1 segment');
  await page.getByRole('button', { name: 'Send' }).click();

  // The fake Twilio was asked to send it, and its delivery callbacks turn the tick.
  const out = page.locator('.msg.out', { hasText: 'your order ships today' });
  await expect(out).toBeVisible();
  await expect(out.locator('.tick')).toHaveAttribute('data-status', 'delivered');
  const sent = await sentTo(customer);
  expect(sent.map((m) => m.body)).toEqual(['Hi there, your order ships today.']);
  await page.screenshot({ path: `${SCREENS}/conversation.png` });

  expect(await seriousViolations(page)).toEqual([]);
});

test('a second agent sees "viewing"; a double-clicked send sends once', async ({ browser }) => {
  const customer = customerNumber();
  // Their own browser contexts (two people), closed at the end: an open one would stay online and
  // take the next test's conversations.
  const contexts = [await browser.newContext(), await browser.newContext()];
  try {
    await viewingAndDoubleClick(customer, await contexts[0]!.newPage(), await contexts[1]!.newPage());
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
});

async function viewingAndDoubleClick(customer: string, alice: Page, sue: Page): Promise<void> {
  await signIn(alice, 'alice');
  await customerTexts(customer, 'Can I change my delivery address?');
  await alice.locator('.row', { hasText: customer }).click();

  // Sue, a supervisor, opens the same conversation from "All": Alice is told.
  await signIn(sue, 'sue');
  await sue.getByRole('button', { name: 'All' }).click();
  await sue.locator('.row', { hasText: customer }).click();
  await expect(alice.getByRole('status').filter({ hasText: /Sue .* is viewing/ })).toBeVisible();

  // Two clicks in a row: the button is busy after the first, and both carry one Idempotency-Key.
  await alice.getByLabel('Reply').fill('Yes: reply with the new address.');
  await alice.getByRole('button', { name: 'Send' }).dblclick();
  await expect(alice.locator('.msg.out', { hasText: 'new address' })).toHaveCount(1);
  await expect(alice.locator('.msg.out .tick')).toHaveAttribute('data-status', 'delivered');
  expect((await sentTo(customer)).length).toBe(1);

  // Sue closes it: Alice no longer sees her there.
  await sue.keyboard.press('Escape');
  await expect(alice.getByRole('status').filter({ hasText: /is viewing/ })).toHaveCount(0);
}

test('an agent splits a second topic off, then merges it back', async ({ page }) => {
  await signIn(page, 'alice');
  const customer = customerNumber();
  await customerTexts(customer, 'My parcel arrived damaged.');
  const rows = page.locator('.row', { hasText: customer });
  await expect(rows).toHaveCount(1);
  await customerTexts(customer, 'Also, can I change my billing address?');
  await rows.first().click();
  const second = page.locator('.msg.in', { hasText: 'billing address' });
  await expect(second).toBeVisible();

  // "Split from here": the billing question becomes its own conversation, which carries the thread
  // on (open, Alice's); the first keeps the damaged parcel and is resolved.
  await second.hover();
  await second.getByRole('button', { name: 'Split from here' }).click();
  await expect(page.getByRole('status').filter({ hasText: '1 message(s) moved to a new conversation.' })).toBeVisible();
  await expect(page.locator('.msg.in')).toHaveCount(1);
  await expect(page.locator('.conv-head .sub')).toContainText('resolved');
  await expect(rows).toHaveCount(1);
  await rows.first().click();
  await expect(page.locator('.msg.in .text')).toHaveText('Also, can I change my billing address?');

  // Merged back into the first: it reopens with both messages, the only conversation in the inbox.
  await page.getByRole('button', { name: 'Merge the open one into this' }).click();
  await expect(page.getByRole('status').filter({ hasText: '1 message(s) moved into the other conversation.' })).toBeVisible();
  await expect(rows).toHaveCount(1);
  await rows.first().click();
  await expect(page.locator('.msg.in .text')).toHaveText(['My parcel arrived damaged.', 'Also, can I change my billing address?']);
});
