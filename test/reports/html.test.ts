// Tests of reports/html.ts: the report of real runs (the shipped virtio-net
// scenario, a migration with a stalled flush, and a sweep of two policies)
// opens in headless Chromium with no network, draws every plot (a canvas
// with pixels on it in each chart div), raises no page error, and shows the
// text summary with the threshold reporter's lines. Screenshots go to
// reports/out/ (a CI artifact). Without /usr/bin/chromium the browser tests
// are skipped and say so.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { loadScenarioFile } from '../../cli/scenario-file.ts';
import { parseSet } from '../../cli/campaign.ts';
import { sweep } from '../../cli/commands/sweep.ts';
import { simulate } from '../../sim/run.ts';
import { htmlReport, runAxisLabels, thinPeaks, thinSteps } from '../../reports/html.ts';
import type { RunResult } from '../../sim/results.ts';
import type { TraceRecord } from '../../sim/instrument/trace.ts';

const CHROMIUM = '/usr/bin/chromium';
const OUT = join('reports', 'out');
const FIXTURE = 'test/cli/fixtures/flush-stall.yaml';

function run(file: string): { result: RunResult; records: readonly TraceRecord[] } {
  const r = simulate(loadScenarioFile(file), { keepTrace: true });
  return { result: r.result, records: r.world.machine.trace.records };
}

const virtioNet = run('scenarios/virtio-net-358ms.yaml');
const migration = run(FIXTURE);
const reports = {
  'virtio-net': htmlReport([virtioNet.result], { traces: [virtioNet.records] }),
  migration: htmlReport([migration.result], { traces: [migration.records] }),
};

describe('the page', () => {
  it('needs nothing from the network', () => {
    for (const html of Object.values(reports)) {
      const markup = html.replace(/<script\b[^>]*>[^]*?<\/script>/g, '<script></script>');
      expect(markup.match(/<[a-z]+[^>]*\b(src|href)\s*=[^>]*>/gi)).toBeNull();
      expect(markup.match(/<script>/g)).toHaveLength(3);
      expect(html.includes('echarts.init(')).toBe(true);
      expect(html.startsWith('<!doctype html>')).toBe(true);
    }
  });

  it('is the same for the same run', () => {
    expect(htmlReport([virtioNet.result], { traces: [virtioNet.records] })).toBe(reports['virtio-net']);
  });

  it('has a plot for each measure with data', () => {
    const kinds = (html: string) => [...html.matchAll(/data-chart="([^"]+)"/g)].map((m) => m[1]);
    expect(kinds(reports['virtio-net'])).toEqual(expect.arrayContaining(['main-loop', 'handlers', 'bql', 'ping', 'userspace']));
    expect(kinds(reports['virtio-net'])).not.toContain('downtime');
    expect(kinds(reports.migration)).toEqual(expect.arrayContaining([
      'remaining-per-iteration', 'remaining-over-time', 'downtime', 'main-loop', 'handlers', 'bql', 'ping', 'userspace',
    ]));
  });

  it('shows the text summary, threshold lines included, escaped', () => {
    expect(reports['virtio-net']).toMatch(/<pre class="summary">[^]*fd read: virtio-net\.net0\.host-notifier-read 358 ms on main-loop/);
    expect(reports['virtio-net']).not.toMatch(/<pre class="summary">[^<]*<[a-z]/);
  });

  it('lists where the stalls came from, each distinct chain once', () => {
    const html = reports['virtio-net']!;
    expect(html).toContain('<h2>Where the stalls came from</h2>');
    const items = html.match(/<ol class="attribution">([^]*?)<\/ol>/)![1]!.match(/<li>/g)!;
    expect(items.length).toBeLessThan(virtioNet.result.attribution.length);
    expect(html).toMatch(/waited \d+ ms for the BQL, held by main-loop in virtio-net\.net0\.host-notifier-read, running for 358 ms/);
  });
});

describe('thinning long series', () => {
  it('keeps every peak bucket and both ends of every gap', () => {
    const points = Array.from({ length: 10_000 }, (_, i) => ({ t: i, v: i === 4321 ? 1000 : 1 }));
    expect(thinPeaks(points, 100, (p) => p.v)).toHaveLength(100);
    expect(thinPeaks(points, 100, (p) => p.v)).toContainEqual({ t: 4321, v: 1000 });
    const steps = [...points.slice(0, 5000), ...points.slice(7000)];
    const thin = thinSteps(steps, 100, (p) => p.t);
    expect(thin.length).toBeLessThan(150);
    expect(thin).toContainEqual(points[4999]);
    expect(thin).toContainEqual(points[7000]);
  });

  it('labels runs by their values when every label names the same keys', () => {
    expect(runAxisLabels(['a.b=1, c=x, seed 1', 'a.b=2, c=y, seed 2'])).toEqual({ lines: [['1', 'x', 'seed 1'], ['2', 'y', 'seed 2']], keys: 'a.b / c / seed' });
    expect(runAxisLabels(['one run', 'other'])).toEqual({ lines: [['one run'], ['other']], keys: null });
  });
});

describe.skipIf(!existsSync(CHROMIUM))(`in headless Chromium${existsSync(CHROMIUM) ? '' : ` (skipped: ${CHROMIUM} is missing)`}`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    mkdirSync(OUT, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** Opens a report; returns what each chart div drew, page errors and network requests. */
  async function open(name: string, html: string, screenshot: string | null) {
    const file = join(OUT, `${name}.html`);
    writeFileSync(file, html);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    const network: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      network.push(url);
      return route.abort();
    });
    await page.goto(`file://${join(process.cwd(), file)}`);
    await page.waitForFunction(() => (globalThis as unknown as { __latsimChartsReady?: boolean }).__latsimChartsReady === true, null, { timeout: 30_000 });
    const charts = await page.$$eval('[data-chart]', (divs) => divs.map((div) => {
      const canvas = div.querySelector('canvas');
      let painted = 0;
      if (canvas && canvas.width > 0 && canvas.height > 0) {
        const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++;
      }
      return { kind: div.getAttribute('data-chart'), rendered: div.getAttribute('data-rendered'), width: canvas?.width ?? 0, height: canvas?.height ?? 0, painted };
    }));
    if (screenshot) await page.screenshot({ path: join(OUT, screenshot), fullPage: true });
    await page.close();
    return { charts, errors, network };
  }

  function expectDrawn(page: Awaited<ReturnType<typeof open>>, kinds: string[]) {
    expect(page.errors).toEqual([]);
    expect(page.network).toEqual([]);
    expect(page.charts.map((c) => c.kind)).toEqual(expect.arrayContaining(kinds));
    for (const c of page.charts) {
      expect(c.rendered, c.kind!).toBe('true');
      expect(c.width, c.kind!).toBeGreaterThan(100);
      expect(c.height, c.kind!).toBeGreaterThan(100);
      // Axes, labels and data: thousands of pixels, not a blank canvas.
      expect(c.painted, c.kind!).toBeGreaterThan(2000);
    }
  }

  it('draws every plot of the virtio-net run', async () => {
    expectDrawn(await open('virtio-net', reports['virtio-net'], 'html-report-virtio-net.png'), ['main-loop', 'handlers', 'bql', 'ping', 'userspace']);
  });

  it('draws every plot of a migration run', async () => {
    expectDrawn(await open('migration', reports.migration, 'html-report.png'),
      ['remaining-per-iteration', 'remaining-over-time', 'downtime', 'main-loop', 'handlers', 'bql', 'ping', 'userspace']);
  });

  it('draws two policies side by side for a sweep', async () => {
    const { results, labels } = await sweep(FIXTURE, { set: [parseSet('migration.policy=legacy,flush-timeout')] }, { keepResults: true });
    expect(labels).toEqual(['migration.policy=legacy', 'migration.policy=flush-timeout']);
    const html = htmlReport(results, { labels, title: 'latsim sweep: flush-stall' });
    const page = await open('sweep', html, 'html-report-sweep.png');
    expectDrawn(page, ['compare-metrics', 'compare-counts', 'compare-downtime', 'compare-remaining', 'compare-ping', 'compare-userspace', 'remaining-per-iteration', 'ping']);
    expect(page.charts.filter((c) => c.kind === 'ping')).toHaveLength(2);
  });
});
