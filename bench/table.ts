import type { BenchReport } from './run';

export interface Row {
  benchmark: string;
  metric: string;
  ours: string;
  baseline: string;
  ratio: string;
  goal: string;
  met: string;
}

const fmt = (n: number | undefined, digits = 1) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));
const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'yes' : 'NO');

/** The goals of issue 7, each judged on a ratio (or a bound) from this run. */
export function rows(report: BenchReport): Row[] {
  const out: Row[] = [];
  const r = report.results;
  for (const m of r.request?.mixes ?? []) {
    const base = `request ${m.mix} (${m.clients} clients)`;
    const readMostly = m.mix === 'read-mostly';
    out.push({ benchmark: base, metric: 'throughput req/s', ours: fmt(m.ours.throughput), baseline: fmt(m.express.throughput), ratio: `${fmt(m.ratios.throughput, 2)}×`, goal: readMostly ? '≥ 1.0×' : '', met: readMostly ? verdict(m.ratios.throughput >= 1) : '' });
    out.push({ benchmark: base, metric: 'p50 ms', ours: fmt(m.ours.p50, 2), baseline: fmt(m.express.p50, 2), ratio: `${fmt(m.ratios.p50, 2)}×`, goal: '', met: '' });
    out.push({ benchmark: base, metric: 'p99 ms', ours: fmt(m.ours.p99, 2), baseline: fmt(m.express.p99, 2), ratio: `${fmt(m.ratios.p99, 2)}×`, goal: readMostly ? '≤ 1.0×' : '', met: readMostly ? verdict(m.ratios.p99 <= 1) : '' });
    if (m.ffExpress && m.ratiosSamePlatform) {
      out.push({ benchmark: base, metric: 'throughput vs express-session under functions-framework', ours: fmt(m.ours.throughput), baseline: fmt(m.ffExpress.throughput), ratio: `${fmt(m.ratiosSamePlatform.throughput, 2)}×`, goal: '', met: '' });
      out.push({ benchmark: base, metric: 'p99 vs express-session under functions-framework', ours: fmt(m.ours.p99, 2), baseline: fmt(m.ffExpress.p99, 2), ratio: `${fmt(m.ratiosSamePlatform.p99, 2)}×`, goal: '', met: '' });
    }
    out.push({ benchmark: base, metric: 'Datastore RPCs / request', ours: fmt(m.ours.rpcPerRequest, 2), baseline: fmt(m.express.rpcPerRequest, 2), ratio: '', goal: '', met: '' });
    if (readMostly) {
      const w = m.ours.rpcPerWriteDetail;
      const prodWrite = m.ours.rpcPerWrite - (w.beginTransaction ?? 0);
      out.push({ benchmark: 'request round trips', metric: 'RPCs per read', ours: fmt(m.ours.rpcPerRead, 2), baseline: fmt(m.express.rpcPerRead, 2), ratio: '', goal: '1', met: verdict(m.ours.rpcPerRead <= 1) });
      out.push({
        benchmark: 'request round trips',
        metric: 'RPCs per write (emulator: +beginTransaction)',
        ours: `${fmt(m.ours.rpcPerWrite, 2)} (${fmt(prodWrite, 2)} without begin)`,
        baseline: fmt(m.express.rpcPerWrite, 2),
        ratio: '',
        goal: '2',
        met: verdict(prodWrite <= 2),
      });
    }
  }
  const c = r.coldStart;
  if (c) {
    const v = (n: string) => c.variants.find((x) => x.name === n);
    const ds = v('datastore');
    for (const name of ['index', 'index+store', 'datastore+client']) {
      const x = v(name);
      if (!x) continue;
      const judged = name === 'index+store';
      out.push({
        benchmark: `cold start ${name}`,
        metric: `load ms (median of ${c.runs}; process ${fmt(x.sinceStartMs)} ms)`,
        ours: fmt(x.requireMs),
        baseline: fmt(ds?.requireMs),
        ratio: `${fmt(ds ? x.requireMs / ds.requireMs : NaN, 2)}×`,
        goal: judged ? '≤ 1.2×' : '',
        met: judged ? verdict(c.ratio <= 1.2) : '',
      });
    }
    const idx = v('index');
    if (idx) out.push({ benchmark: 'cold start index', metric: 'loads @google-cloud/pubsub', ours: idx.loadsPubsub ? 'yes' : 'no', baseline: '', ratio: '', goal: 'no', met: verdict(!idx.loadsPubsub) });
  }
  return out;
}

export function formatTable(report: BenchReport): string {
  const body = rows(report);
  const head: Row = { benchmark: 'benchmark', metric: 'metric', ours: 'ours', baseline: 'baseline', ratio: 'ratio', goal: 'goal', met: 'met' };
  const keys = Object.keys(head) as Array<keyof Row>;
  const widths = keys.map((k) => Math.max(...[head, ...body].map((row) => row[k].length)));
  const line = (row: Row) => `| ${keys.map((k, i) => row[k].padEnd(widths[i]!)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const lines = [line(head), sep, ...body.map(line)];
  for (const e of report.errors) lines.push(`\n${e.benchmark} FAILED: ${e.error.split('\n')[0]}`);
  return lines.join('\n');
}
