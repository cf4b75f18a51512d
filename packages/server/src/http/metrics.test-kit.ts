import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';

/** The value of one sample line (`name{labels}`) of a /metrics text, or undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length).trim());
}

/** A node's /metrics text; it must answer 200 whether or not the database does. */
export async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
  return text;
}

/** `promtool check metrics` (Debian package prometheus; .ci/run installs it): lint errors or ''. */
export async function promtool(text: string): Promise<{ code: number | null; output: string }> {
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d));
  child.stderr.on('data', (d: Buffer) => (output += d));
  child.stdin.end(text);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

/** Each series of a /metrics text by name (a histogram by its own name, not `_bucket`), with its label names (`le` aside). */
export function seriesOf(text: string): Map<string, string[]> {
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]!));
  const series = new Map<string, Set<string>>();
  for (const [, type] of text.matchAll(/^# TYPE (\S+) \S+$/gm)) series.set(type!, new Set());
  for (const [, sampled, labels] of text.matchAll(/^(\w+)(?:\{([^}]*)\})? /gm)) {
    const name = [...histograms].find((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`].includes(sampled!)) ?? sampled!;
    for (const [, label] of (labels ?? '').matchAll(/(\w+)="/g)) if (label !== 'le') series.get(name)?.add(label!);
  }
  return new Map([...series].map(([name, labels]) => [name, [...labels].sort()]));
}

/**
 * The README's "Metrics" table: each series by name with its label names,
 * and its wildcard rows (`runtrail_process_*`) as prefixes.
 */
export function readmeMetrics(): { series: Map<string, string[]>; prefixes: string[] } {
  const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Metrics\n'), readme.indexOf('\n## Benchmarks\n'));
  const named = section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) => [...line.split(' | ')[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
  const series = new Map<string, string[]>();
  for (const n of named.filter((n) => !n.endsWith('*'))) {
    const [, name, labels] = /^(\w+)(?:\{(.*)\})?$/.exec(n)!;
    series.set(name!, labels ? labels.split(',').sort() : []);
  }
  return { series, prefixes: named.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1)) };
}

/**
 * What a scrape and the README's table disagree on: series served but not
 * listed, listed but not served (`only` narrows both to the names it
 * accepts), and label names that differ where the scrape has samples.
 */
export function readmeMetricsDrift(text: string, only: (name: string) => boolean = () => true): string[] {
  const { series: listed, prefixes } = readmeMetrics();
  const served = seriesOf(text);
  const drift: string[] = [];
  for (const [name, labels] of served) {
    if (prefixes.some((p) => name.startsWith(p)) || !only(name)) continue;
    const doc = listed.get(name);
    if (doc === undefined) drift.push(`${name} is served but not in the README`);
    else if (labels.length > 0 && doc.join(',') !== labels.join(',')) drift.push(`${name}: served with {${labels.join(',')}}, README says {${doc.join(',')}}`);
  }
  for (const name of listed.keys()) if (only(name) && !served.has(name)) drift.push(`${name} is in the README but not served`);
  for (const p of prefixes) if (![...served.keys()].some((name) => name.startsWith(p))) drift.push(`nothing served matches ${p}*`);
  return drift;
}
