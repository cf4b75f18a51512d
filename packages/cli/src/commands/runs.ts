import type { Command } from 'commander';
import { RuntrailClient } from '@runtrail/client';
import type { Run, RunStatus } from '@runtrail/protocol';
import { clientOptions } from '../options.js';

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('list and inspect runs on a server');

  runs
    .command('ls')
    .description('list runs, newest first')
    .option('--status <status>', 'queued|running|succeeded|failed|cancelled')
    .option('--name <name>', 'only runs with this name')
    .option('--parent <id>', 'only child runs of this run')
    .option('--label <k=v>', 'only runs with these labels (k=v[,k=v])')
    .option('--limit <n>', 'how many (1-200)', '20')
    .option('--json', 'print JSON')
    .action(async (flags: { status?: RunStatus; name?: string; parent?: string; label?: string; limit: string; json?: boolean }, cmd: Command) => {
      const client = new RuntrailClient(clientOptions(cmd));
      const page = await client.listRuns({
        status: flags.status,
        name: flags.name,
        parentId: flags.parent,
        label: flags.label,
        limit: Number(flags.limit),
      });
      if (flags.json) return print(JSON.stringify(page, null, 2));
      if (page.runs.length === 0) return print('no runs');
      print(formatTable(page.runs));
      if (page.nextCursor) print(`… more: --limit, or GET /api/v1/runs?cursor=${page.nextCursor}`);
    });

  runs
    .command('show <id>')
    .description("a run's state: status, counters, progress, phases, last error")
    .option('--json', 'print the run as JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
      const run = await new RuntrailClient(clientOptions(cmd)).getRun(id);
      print(flags.json ? JSON.stringify(run, null, 2) : formatRun(run));
    });
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function formatTable(runs: Run[]): string {
  const rows = runs.map((r) => [
    r.id,
    r.name,
    r.status,
    progressText(r),
    `${r.snapshot.counters.ok}/${r.snapshot.counters.failed}/${r.snapshot.counters.retries}`,
    duration(r),
    new Date(r.createdAt).toISOString().replace('T', ' ').slice(0, 19),
  ]);
  const header = ['ID', 'NAME', 'STATUS', 'PROGRESS', 'OK/FAIL/RETRY', 'DURATION', 'CREATED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function formatRun(run: Run & { observers?: number }): string {
  const s = run.snapshot;
  const lines = [
    `${run.name}  ${run.id}`,
    `status     ${run.status}${run.error ? ` (${run.error.kind}: ${run.error.message})` : ''}`,
    `duration   ${duration(run)}   seq ${run.seq}${run.observers !== undefined ? `   observers ${run.observers}` : ''}`,
    `progress   ${progressText(run)}${s.progress?.message ? `  ${s.progress.message}` : ''}`,
    `calls      ok ${s.counters.ok}  failed ${s.counters.failed}  retries ${s.counters.retries}  in flight ${Object.keys(s.current).length}`,
  ];
  for (const [name, value] of Object.entries(s.counters.named)) lines.push(`counter    ${name} ${value}`);
  for (const [name, m] of Object.entries(s.metrics)) {
    lines.push(`metric     ${name} ${fmt(m.last)} (min ${fmt(m.min)}, max ${fmt(m.max)}, n ${m.count})`);
  }
  for (const p of s.phases) {
    lines.push(`phase      ${p.name} ${p.status}${p.durationMs !== null ? ` in ${(p.durationMs / 1000).toFixed(1)}s` : ''}`);
  }
  for (const call of Object.values(s.current).slice(0, 10)) lines.push(`in flight  ${call.label} (attempt ${call.attempt})`);
  if (s.lastError) lines.push(`last error ${s.lastError.message}`);
  return lines.join('\n');
}

function progressText(run: Run): string {
  const p = run.snapshot.progress;
  if (!p) return '-';
  return p.percent !== null ? `${p.done}/${p.total} ${p.percent.toFixed(0)}%` : String(p.done);
}

function duration(run: Run): string {
  if (run.startedAt === null) return '-';
  const end = run.finishedAt ?? Date.now();
  return `${((end - run.startedAt) / 1000).toFixed(1)}s`;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(3);
}
