// The widget on a web page and the console, in two browser contexts, chatting in real time.
import { mkdirSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { seriousViolations, signIn, stack } from './stack';

const SCREENS = 'test-results/screens';
mkdirSync(SCREENS, { recursive: true });

test('a visitor and an agent chat live: typing both ways, a file, read receipts', async ({ browser }) => {
  const contexts = [await browser.newContext(), await browser.newContext()];
  try {
    await chat(await contexts[0]!.newPage(), await contexts[1]!.newPage());
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
});

async function chat(agent: Page, visitor: Page): Promise<void> {
  await signIn(agent, 'alice');

  await visitor.goto(`${stack.console_url}/demo/`);
  const widget = visitor.locator('#switchboard-widget');
  await widget.getByRole('button', { name: 'Chat with us' }).click();
  const chat = widget.getByRole('dialog', { name: 'Chat' });
  await expect(chat.getByRole('status')).toContainText(/reply/i);

  // The visitor types, then sends.
  const box = chat.getByLabel('Your message');
  await box.pressSequentially('Hi, do you ship to Portugal?');
  await box.press('Enter');
  await expect(chat.locator('.msg.visitor .meta').last()).toHaveText('Sent');

  // The conversation reaches Alice live; she opens it.
  const row = agent.locator('.row', { has: agent.locator('.chip-webchat') }).first();
  await expect(row).toBeVisible();
  await row.click();
  await expect(agent.locator('.msg.in .text').last()).toHaveText('Hi, do you ship to Portugal?');

  // Visitor typing → the agent sees it.
  await box.pressSequentially('Also');
  await expect(agent.getByText('The customer is typing…')).toBeVisible();

  // Agent typing → the visitor sees it; then the reply arrives in the widget.
  const reply = agent.getByLabel('Reply');
  await reply.pressSequentially('Yes, we do');
  await expect(chat.getByText('An agent is typing…')).toBeVisible();
  await reply.pressSequentially(': 3 to 5 days.');
  await agent.getByRole('button', { name: 'Send' }).click();
  await expect(chat.locator('.msg.agent p')).toHaveText('Yes, we do: 3 to 5 days.');

  // The visitor's screen shows it, so the agent's tick turns to read.
  await expect(agent.locator('.msg.out .tick').last()).toHaveAttribute('data-status', 'read');

  // A file from the visitor: uploaded straight to the bucket, then shown to the agent.
  await box.fill('');
  await chat.getByLabel('Attach a file').setInputFiles({
    name: 'receipt.pdf',
    mimeType: 'application/pdf',
    buffer: Buffer.from('%PDF-1.4\n% a receipt\n'),
  });
  await expect(agent.getByRole('button', { name: /Download receipt\.pdf/ })).toBeVisible();
  await visitor.screenshot({ path: `${SCREENS}/widget.png` });

  expect(await seriousViolations(visitor)).toEqual([]);
  expect(await seriousViolations(agent)).toEqual([]);
}

test('with nobody online the widget says so, takes an email to answer by and asks to confirm it', async ({ browser }) => {
  const context = await browser.newContext();
  try {
    const visitor = await context.newPage();
    await visitor.goto(`${stack.console_url}/demo/`);
    const widget = visitor.locator('#switchboard-widget');
    await widget.getByRole('button', { name: 'Chat with us' }).click();
    const chat = widget.getByRole('dialog', { name: 'Chat' });
    const email = chat.getByLabel(/Leave your email/);
    await expect(email).toBeVisible();
    await email.fill('rui@example.com');
    await chat.getByRole('button', { name: 'Save email' }).click();
    await expect(chat.getByRole('status')).toHaveText('We will answer at rui@example.com if you have left.');
    await expect(email).toBeHidden();
    // The address is only claimed until the visitor opens the link mailed to it: the widget says so.
    await expect(chat.getByRole('status')).toHaveText(
      'We will answer at rui@example.com. We sent a link there: open it to confirm the address is yours.',
    );
    // Still a chat: the message is taken and acknowledged.
    await chat.getByLabel('Your message').fill('Are you open on Sundays?');
    await chat.getByLabel('Your message').press('Enter');
    await expect(chat.locator('.msg.visitor .meta').last()).toHaveText('Sent');
    expect(await seriousViolations(visitor)).toEqual([]);
  } finally {
    await context.close();
  }
});
