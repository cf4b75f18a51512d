// A 200 MiB artifact in and out of a server in its own process, sampling the
// server's RSS (/proc/<pid>/status) every 50 ms. Build first: npm run build.
// Target (issue 16): peak RSS within 64 MB (decimal, 61.0 MiB) of the idle level.
// Sizes are printed in MiB; the bench fails if the round trip changed a byte.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

const SIZE = Number(process.env.BENCH_ARTIFACT_BYTES ?? 200 * 1024 * 1024);
const dir = mkdtempSync(join(tmpdir(), 'runtrail-bench-artifacts-'));
const cli = new URL('../packages/cli/dist/main.js', import.meta.url).pathname;
const server = spawn(process.execPath, [cli, 'serve', '--port', '0', '--data-dir', dir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const url = await new Promise((resolve, reject) => {
  server.stdout.on('data', (d) => {
    out += d;
    const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m) resolve(m[1]);
  });
  server.once('exit', (code) => reject(new Error(`server exited ${code}`)));
});
const TARGET_MIB = 64e6 / 2 ** 20;
const rssMib = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]) / 1024;
await new Promise((r) => setTimeout(r, 1000));
const idle = rssMib();
let peak = idle;
const sampler = setInterval(() => (peak = Math.max(peak, rssMib())), 50);

// Whatever goes wrong (an upload refused, a server that died), the sampler
// and the server stop with it, so the bench fails instead of hanging.
let upMs = 0;
let downMs = 0;
let received = 0;
let record = null;
const hashSent = createHash('sha256');
const got = createHash('sha256');
try {
  const run = await (await fetch(`${url}/api/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"bench-artifact"}' })).json();
  const chunk = Buffer.alloc(1024 * 1024, 7);
  let sent = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (sent >= SIZE) return controller.close();
      const n = Math.min(chunk.length, SIZE - sent);
      sent += n;
      hashSent.update(chunk.subarray(0, n));
      controller.enqueue(chunk.subarray(0, n));
    },
  });
  let t = Date.now();
  const put = await fetch(`${url}/api/v1/runs/${run.id}/artifacts/big.bin`, { method: 'PUT', body, duplex: 'half', headers: { 'content-type': 'application/octet-stream', 'x-runtrail-client': 'bench' } });
  if (put.status !== 201) throw new Error(`PUT answered ${put.status}: ${await put.text()}`);
  record = await put.json();
  upMs = Date.now() - t;
  t = Date.now();
  const get = await fetch(`${url}/api/v1/runs/${run.id}/artifacts/big.bin`);
  for await (const part of get.body) {
    received += part.length;
    got.update(part);
  }
  downMs = Date.now() - t;
} finally {
  clearInterval(sampler);
  if (server.exitCode === null) peak = Math.max(peak, rssMib());
  // The data dir goes only once the server is gone: it may still be writing to it.
  const exited = server.exitCode === null ? new Promise((resolve) => server.once('exit', resolve)) : null;
  server.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
// The figures count only if the bytes made the round trip intact.
const sha256 = hashSent.digest('hex');
if (record.size !== SIZE || record.sha256 !== sha256) throw new Error(`the server stored ${record.size} bytes hashing to ${record.sha256}; sent ${SIZE} hashing to ${sha256}`);
if (received !== SIZE || got.digest('hex') !== sha256) throw new Error(`got ${received} of ${SIZE} bytes back, or other bytes`);
const mib = SIZE / 2 ** 20;
const rate = (ms) => `${(mib / (ms / 1000)).toFixed(0)} MiB/s`;
console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString()}`);
console.log(`artifact ${mib.toFixed(1)} MiB (sha256 checked both ways): in ${upMs} ms (${rate(upMs)}), out ${downMs} ms (${rate(downMs)})`);
console.log(`server RSS: idle ${idle.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB, peak - idle ${(peak - idle).toFixed(1)} MiB (target: within ${TARGET_MIB.toFixed(1)} MiB = 64 MB)`);
process.exit(peak - idle < TARGET_MIB ? 0 : 1);
