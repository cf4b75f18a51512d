import { spawn } from 'node:child_process';
import { once } from 'node:events';

/** The value of one sample line (`name{labels}`) of a /metrics text, or undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length).trim());
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
