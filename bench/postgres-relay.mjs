// The hand-built peer of node A in bench/postgres.mjs's cross-node workload:
// what a team writes when it puts WebSockets on PostgreSQL by hand, with none
// of runtrail's machinery. One `pg` connection LISTENs on the channel runtrail
// notifies appends on; on each notification a second connection reads the
// run's new rows (one read in flight per run, notifications meanwhile folded
// into the next) and each read's rows go out at once as one frame to every
// subscribed socket. (One frame per event, as the stream bench's plain `ws`
// broadcaster sends, costs a socket write per event and observer: at 500 ev/s
// its backlog grew to seconds with 100 observers.) No store, no flushes, no
// auth, no resume: what a fan-out node without runtrail's machinery reaches
// on the same machine, with the same producer, node B and observers. Its
// events are the same JSON as runtrail's (the stored body, with its `runId`
// put in front as packages/store/src/event-text.ts does unless the subscribe
// said `compact`), so the observers parse the same bytes from either and
// only the fan-out differs.
//
// Started by bench/postgres.mjs (`--systems runtrail,relay`); speaks just enough
// of runtrail's stream protocol for its observers (subscribe, subscribed,
// events frames).
//   node bench/postgres-relay.mjs --database postgres://… --schema rt_bench_…
import http from 'node:http';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { WebSocketServer } from 'ws';

const { values: args } = parseArgs({
  options: { database: { type: 'string' }, schema: { type: 'string' } },
});
if (!args.database || !args.schema) throw new Error('postgres-relay: --database and --schema are required');

const options = `-c search_path=${args.schema}`;
const listener = new pg.Client({ connectionString: args.database, options });
const reader = new pg.Client({ connectionString: args.database, options });
await Promise.all([listener.connect(), reader.connect()]);

/** Per run: its subscribed sockets (whole events, compact), the last seq sent, the highest seq notified, whether a read is in flight. */
const runs = new Map();
const runOf = (runId) => {
  let run = runs.get(runId);
  if (!run) runs.set(runId, (run = { sockets: new Set(), compactSockets: new Set(), sent: 0, notified: 0, reading: false }));
  return run;
};

async function readAndSend(runId, run) {
  run.reading = true;
  try {
    while (run.sent < run.notified) {
      const { rows } = await reader.query('SELECT seq, body FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq', [runId, run.sent]);
      if (rows.length === 0) break;
      const runIdJson = JSON.stringify(runId);
      const frameOf = (events) => `{"type":"events","runId":${runIdJson},"events":[${events}]}`;
      if (run.sockets.size > 0) {
        const frame = frameOf(rows.map((row) => `{"runId":${runIdJson},${row.body.slice(1)}`).join(','));
        for (const ws of run.sockets) if (ws.readyState === 1) ws.send(frame);
      }
      if (run.compactSockets.size > 0) {
        const frame = frameOf(rows.map((row) => row.body).join(','));
        for (const ws of run.compactSockets) if (ws.readyState === 1) ws.send(frame);
      }
      run.sent = Number(rows[rows.length - 1].seq);
    }
  } finally {
    run.reading = false;
  }
}

listener.on('notification', ({ payload }) => {
  // runtrail's append payload: `a <fromSeq> <seq> <runId>` (packages/store/src/postgres/notifications.ts).
  if (!payload?.startsWith('a ')) return;
  const [, , seq, ...rest] = payload.split(' ');
  const run = runs.get(rest.join(' '));
  if (!run || run.sockets.size + run.compactSockets.size === 0) return;
  run.notified = Math.max(run.notified, Number(seq));
  if (!run.reading) readAndSend(rest.join(' '), run).catch((err) => {
    process.stderr.write(`postgres-relay: read failed: ${err.message}\n`);
    process.exit(1);
  });
});
await listener.query(`LISTEN "runtrail_events.${args.schema}"`);

const server = http.createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server, path: '/api/v1/stream' });
wss.on('connection', (ws) => {
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.op !== 'subscribe') return;
    const run = runOf(msg.runId);
    const sockets = msg.compact === true ? run.compactSockets : run.sockets;
    sockets.add(ws);
    ws.once('close', () => sockets.delete(ws));
    ws.send(JSON.stringify({ type: 'subscribed', runId: msg.runId }));
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
process.send({ url: `http://127.0.0.1:${server.address().port}` });
process.on('message', async () => {
  for (const ws of wss.clients) ws.terminate();
  server.close();
  await Promise.all([listener.end(), reader.end()]);
  process.exit(0);
});
