// The supervisor's and finance's pages: live team view, analytics, costs with CSV download.
import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { customerNumber, customerTexts, seriousViolations, signIn } from './stack';

const SCREENS = 'test-results/screens';

test('a supervisor sees the team live and the reports; finance sees the costs and downloads them', async ({ browser }) => {
  const contexts = [await browser.newContext(), await browser.newContext({ acceptDownloads: true })];
  try {
    const sue = await contexts[0]!.newPage();
    await signIn(sue, 'sue');
    // A message this month, so the reports have something to show.
    await customerTexts(customerNumber(), 'Do you have the blue tent in stock?');
    await sue.getByRole('link', { name: 'Team' }).click();
    const agents = sue.getByRole('table', { name: 'Agents' });
    await expect(agents.getByRole('row', { name: /sue/ })).toContainText('online');
    await expect(sue.locator('.chart canvas').first()).toBeVisible();
    expect(await seriousViolations(sue)).toEqual([]);

    await sue.getByRole('link', { name: 'Reports' }).click();
    // Analytics counts arrive in batches: refresh until the SMS shows.
    await expect(async () => {
      await sue.getByRole('button', { name: 'Refresh' }).click();
      await expect(sue.getByRole('table').getByRole('row', { name: /^sms/ })).toBeVisible({ timeout: 1000 });
    }).toPass({ timeout: 30_000 });
    expect(await seriousViolations(sue)).toEqual([]);
    await sue.screenshot({ path: `${SCREENS}/reports.png` });

    // Finance has no inbox: the console opens on the costs.
    const fin = await contexts[1]!.newPage();
    await signIn(fin, 'fin');
    await expect(fin.getByRole('heading', { name: 'Costs' })).toBeVisible();
    await expect(fin.getByRole('link', { name: 'Inbox' })).toHaveCount(0);
    await expect(async () => {
      await fin.getByRole('button', { name: 'Refresh' }).click();
      await expect(fin.getByRole('table').getByRole('row', { name: /^sms/ }).first()).toBeVisible({ timeout: 1000 });
    }).toPass({ timeout: 30_000 });
    const [download] = await Promise.all([fin.waitForEvent('download'), fin.getByRole('button', { name: 'Download CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv.split('\n')[0]).toMatch(/^month,by,key,/);
    expect(csv).toMatch(/\n[0-9-]+,channel,sms,/);
    expect(await seriousViolations(fin)).toEqual([]);
    await fin.screenshot({ path: `${SCREENS}/costs.png` });
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
});
