import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULT_MAX_EVENTS_PER_BATCH, MAX_EVENT_DATA_BYTES, MAX_META_BYTES, RuntrailError, parseLinkPreviewOrigin } from '@runtrail/protocol';
import { MAX_LINK_PREVIEW_HOSTS, linkPreviewHostsProblem } from './security/browser-guard.js';

/**
 * One declaration per configuration key: its schema (with the default), a
 * description, and how it is spelled elsewhere. The `serve` flags, the
 * RUNTRAIL_* environment variables, the config file, `runtrail config` and
 * the README table are all derived from `settings`, so adding a key here is
 * the whole job and the spellings can never drift apart.
 */
export interface Setting<S extends z.ZodType = z.ZodType> {
  schema: S;
  description: string;
  /** Environment variable; derived from the key (`leaseTtlMs` → RUNTRAIL_LEASE_TTL_MS) unless given. */
  env: string;
  /** CLI flag without dashes; derived from the key (`leaseTtlMs` → lease-ttl-ms) unless given. */
  flag: string;
  /** `switch`: a flag without a value (`--insecure`); `list`: comma-separated in flags and env, an array in the file. */
  kind: 'value' | 'switch' | 'list';
  /**
   * Masked in `runtrail config` and in the start-up log line: `true`, the
   * whole value; `'password'`, only a URL's password, so an operator can
   * still see which database a node uses.
   */
  secret: boolean | 'password';
}

interface SettingOptions {
  env?: string;
  flag?: string;
  secret?: boolean | 'password';
}

const words = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(' ');

function setting<S extends z.ZodType>(
  kind: Setting['kind'],
  schema: S,
  description: string,
  options: SettingOptions,
): Omit<Setting<S>, 'env' | 'flag'> & SettingOptions {
  return { schema, description, kind, secret: options.secret ?? false, env: options.env, flag: options.flag };
}

/** A key given as one value: a string, a number (strings from flags and env are coerced), an enum. */
export const value = <S extends z.ZodType>(schema: S, description: string, options: SettingOptions = {}) =>
  setting('value', schema, description, options);

/** An on/off key: `--flag` (or `--no-flag`), env `true|false|1|0`, a JSON boolean in the file. */
export const toggle = (fallback: boolean, description: string, options: SettingOptions = {}) =>
  setting(
    'switch',
    z
      // One message saying what is wanted: zod's own for a failed union is "Invalid input".
      .union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')], {
        error: 'true or false (1 or 0 in the environment)',
      })
      .default(fallback),
    description,
    options,
  );

/** A list of strings: `a,b,c` in flags and env, an array in the file. */
export const list = (fallback: string[], description: string, options: SettingOptions = {}) =>
  setting(
    'list',
    z
      .union([
        z.array(z.string().min(1)),
        z.string().transform((s) => s.split(',').map((part) => part.trim()).filter(Boolean)),
      ])
      .default(fallback),
    description,
    options,
  );

/** A list of IP addresses (none by default): a host name would never equal a connection's peer, and so silently match nothing. */
const ipList = (description: string) => {
  const base = list([], description);
  return { ...base, schema: base.schema.refine((all) => all.every((one) => isIP(one) !== 0), 'IP addresses, comma-separated (not host names)') };
};

/**
 * Origins whose linked artifacts the dashboard may preview (see
 * linkPreviewHosts below), each checked and spelled canonically; the first
 * one that is not an origin is named, as it must never reach the CSP header.
 */
const originList = (description: string) => {
  const base = list([], description);
  return {
    ...base,
    schema: base.schema
      .superRefine((all, ctx) => {
        for (const one of all) {
          const parsed = parseLinkPreviewOrigin(one);
          if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
        }
      })
      .transform((all) => [...new Set(all.map((one) => (parseLinkPreviewOrigin(one) as { origin: string }).origin))])
      // Bounded here, at start-up: past it every answer's headers could outgrow what a proxy accepts (browser-guard.ts).
      .superRefine((origins, ctx) => {
        const problem = linkPreviewHostsProblem(origins);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      }),
  };
};

/**
 * A whole number in [min, max]; strings from flags and env are read only
 * when they are digits. Coercing any string let `--database-statement-timeout-ms ""`
 * (a template whose variable was unset) become 0, no limit, and `0x10` 16; the
 * one message says what is wanted, not zod's "expected number, received NaN".
 */
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const error = `a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}`;
  return z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z.number({ error }).int({ error }).min(min, { error }).max(max, { error }),
  );
};

const declared = {
  host: value(z.string().min(1).default('127.0.0.1'), 'address to listen on'),
  port: value(int(0, 65535).default(4310), 'port to listen on; 0 picks a free one'),
  dataDir: value(z.string().min(1).default('./.runtrail'), 'folder of the SQLite file runtrail.db and per-run subprocess logs'),
  databaseUrl: value(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
      // pg keeps them in the database's name ("runtrail\n"), and 3D000 then named a database that exists.
      .refine((url) => url.trim() === url, "has spaces or a line break at its start or end (a secret file's last newline?); remove them")
      .optional(),
    'postgres://… to keep runs in PostgreSQL, shared by every node given the same URL (store, executor queue, cross-node fan-out); unset: SQLite in dataDir',
    { flag: 'database', secret: 'password' },
  ),
  databaseSchema: value(
    z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lower case letters, digits and _').default('public'),
    "PostgreSQL schema of runtrail's tables (created if missing)",
  ),
  databasePoolSize: value(int(2, 1000).default(10), 'PostgreSQL connections per node (one more is used for LISTEN)'),
  databaseStatementTimeoutMs: value(
    int(0).default(30_000),
    'PostgreSQL cancels any statement running longer (ms; 0 = no limit); the request gets 503',
  ),
  node: value(
    z.string().min(1).default(hostname()),
    "this node's name in run owners; a restarted node with the same name recovers its runs; a process started under the name of a live one refuses to start",
  ),
  bodyLimitBytes: value(int(1024).default(8 * 1024 * 1024), 'larger request bodies get 413'),
  logLevel: value(
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    'fatal|error|warn|info|debug|trace|silent',
  ),
  logFormat: value(
    z.enum(['auto', 'json', 'pretty']).default('auto'),
    'auto: human lines when stdout is a terminal, JSON lines otherwise; json; pretty',
  ),
  leaseTtlMs: value(int(1000).default(30_000), 'lease given to a run whose creator does not ask for another'),
  reaperIntervalMs: value(int(50).default(2_000), 'how often the reaper looks for lapsed leases, stalls and timeouts'),
  queuedOrphanTimeoutMs: value(
    int(0).default(600_000),
    'queued runs of a handler that no live node has defined for this long end failed/orphaned (0: they wait for one forever)',
  ),
  concurrency: value(int(0).default(4), 'runs the executor works on at once'),
  shutdownGraceMs: value(int(0).default(10_000), 'how long a handler asked to stop (shutdown, cancel, timeout) has before its run is ended without it'),
  sendBufferBytes: value(
    int(16 * 1024).default(1024 * 1024),
    'bytes a WebSocket or SSE connection may have queued before it is switched to catch-up reads',
  ),
  streamPingIntervalMs: value(
    int(50).default(15_000),
    'WebSocket ping / SSE keepalive interval; a WebSocket that misses one pong is terminated, an SSE stream whose reader takes nothing of its full send buffer for one interval is closed',
  ),
  artifactsDir: value(z.string().min(1).optional(), 'folder of artifact content, content-addressed files (default: <dataDir>/artifacts)'),
  maxArtifactBytes: value(int(1).default(1024 * 1024 * 1024), 'largest artifact accepted; a larger upload gets 413 and leaves nothing behind'),
  maxRunArtifactBytes: value(
    int(1).default(10 * 1024 * 1024 * 1024),
    'most artifact bytes one run may hold; an upload past it gets 413 and leaves nothing behind',
  ),
  maxImportRuns: value(
    int(1).default(10_000),
    'most runs one family archive may hold (an export with ?family=true of a run with more under it is refused too); more gets 413 and nothing imported',
  ),
  maxImportBytes: value(
    int(1024).default(16 * 1024 * 1024 * 1024),
    'most bytes one archive may hold, a single run or a family (as a tar, unpacked from gzip: records, events and artifact content); more gets 413 and nothing imported',
  ),
  webDir: value(z.string().min(1).optional(), 'folder of the built dashboard served at / (default: the build of the installed @runtrail/web package)'),

  // Security (issue 15; the README's "Security" section).
  adminToken: value(
    z.string().min(16, 'the admin token must be at least 16 characters').optional(),
    'turns auth on: the token of the admin scope (at least 16 characters)',
    { secret: true },
  ),
  adminTokenFile: value(z.string().min(1).optional(), 'a file holding the admin token (kept out of the environment and the process list)'),
  insecure: toggle(
    false,
    'serve without an admin token where that is refused: a non-loopback address (open to everyone who can reach it), or a PostgreSQL database whose other nodes require tokens (their runs open here)',
  ),
  allowedOrigins: list([], "origins besides the server's own that may open the WebSocket"),
  corsOrigins: list([], 'origins that may call the HTTP API from a browser (CORS); none by default'),
  allowedHosts: list([], 'host names the server answers to besides IP literals, localhost and --host (DNS-rebinding guard)'),
  // None by default. Open to every http(s) host (what the dashboard's CSP said before), a
  // script that got into the page, or a link the viewer was lured into previewing, could send
  // what the page can read to any host, or reach into the viewer's own network; listing the
  // hosts producers keep artifacts on closes that for all the others. What a deployment that
  // sets nothing loses is the in-page preview of a link: it stays a link that opens in a tab.
  linkPreviewHosts: originList(
    `origins (http(s)://host[:port], http(s)://*.domain.tld for any subdomain) whose linked artifacts the dashboard may preview in the page; the only hosts besides the server's own that its Content-Security-Policy lets the page load images, media or data from; none by default, at most ${MAX_LINK_PREVIEW_HOSTS} (each is written into every answer's headers)`,
  ),
  tokenCacheMs: value(int(0).default(1000), 'how long a checked token is trusted before the store is asked again (bounds how late a revoke on another node takes effect when its PostgreSQL notification, which ends it at once, is missed)'),

  // Limits: past each, a 413/429 or a WebSocket close code, never a crash.
  maxEventsPerBatch: value(int(1).default(DEFAULT_MAX_EVENTS_PER_BATCH), 'events one append may carry (the body limit bounds them too); more gets 413'),
  maxEventDataBytes: value(int(64).default(MAX_EVENT_DATA_BYTES), "bytes of one event's data as JSON; more gets 413"),
  maxMetaBytes: value(int(64).default(MAX_META_BYTES), "bytes of a meta event's data as JSON; more gets 413"),
  maxInputBytes: value(int(64).default(1024 * 1024), "bytes of a run's input as JSON; more gets 413"),
  maxLabelsBytes: value(int(64).default(16 * 1024), "bytes of a run's labels as JSON (also at most 50 labels); more gets 413"),
  readPageBytes: value(
    int(1024).default(8 * 1024 * 1024),
    "bytes one page of GET /runs/:id/events (events) or GET /runs (runs' inputs, outputs and errors) holds at most, at least one however large; a page cut short says more is waiting (the events' seq, the list's nextCursor); also each store read of a stream's catch-up, of other nodes' events and of an export",
  ),
  maxSubscriptionsPerConnection: value(int(1).default(1000), 'subscriptions one WebSocket may hold; more get an error frame'),
  maxConnectionsPerToken: value(int(1).default(1024), 'open stream connections (WebSocket + SSE) one token may hold; more get 429 / close 4429 (held heartbeats alike, apart)'),
  maxConnectionsPerIp: value(int(1).default(1024), 'open stream connections one client address may hold; more get 429 / close 4429 (heartbeats held open, ?waitMs=, are counted apart against the same number: more are answered at once)'),
  appendEventsPerSecond: value(int(1).default(20_000), 'events per second one run accepts over HTTP (bursts of twice that); more get 429 with Retry-After'),
  createRunsPerSecondPerIp: value(
    int(1).default(2000),
    'runs one client address may create per second, new runs and retries, handler runs included (bursts of twice that; a replay of an Idempotency-Key or a refused create does not count); more get 429 with Retry-After naming the setting',
  ),
  mintRunTokensPerSecond: value(
    int(1).default(100),
    'run tokens one token may mint per second (on a server without auth, one client address), bursts of twice that; more get 429 with Retry-After naming the setting',
  ),
  maxRunTokensPerRun: value(
    int(1).default(1000),
    'live (unexpired, unrevoked) run tokens one run may have; one more is refused with 409 too_many_run_tokens naming the setting (the executor\'s subprocess token included)',
  ),
  wsMessagesPerSecond: value(int(1).default(100), 'messages per second one WebSocket may send (bursts of twice that); more: close 4429'),
  wsMessagesPerSecondPerIp: value(
    int(1).default(1000),
    "messages per second one client address may send over all its WebSockets together (bursts of twice that); the socket that sends past it is closed with 4429 naming the setting (else a client's sockets, up to maxConnectionsPerIp, each had wsMessagesPerSecond)",
  ),
  maxHttpConnectionsPerIp: value(
    int(1).default(4096),
    'TCP connections one client address may hold open at once (requests being sent, idle keep-alive, streams); one more is answered 429 and closed; connections from trustedProxies are not counted here',
  ),
  maxBodyBytesPerIp: value(
    int(1024).default(64 * 1024 * 1024),
    'bytes of JSON request bodies one client address may have on their way in at once (each is held in memory until whole); a body past it gets 429; artifact uploads stream to disk and are not counted; at least bodyLimitBytes',
  ),
  maxUnreadAnswerBytesPerIp: value(
    int(1024).default(256 * 1024 * 1024),
    'bytes of answers built in memory (pages of events, lists of runs) one client address may have not yet read at once (each is queued on its connection until the client reads it, or until connectionIdleTimeoutMs); an answer past it is dropped and answered 429 with Retry-After naming the setting, unless the address holds none; an export counts the events file it is building and is cut past it; artifact downloads and SSE streams hold little and are not counted, nor are answers of 8 KiB or less; at least readPageBytes',
  ),
  trustedProxies: ipList(
    "addresses (IP literals) of reverse proxies in front of the server: a connection from one is counted under the client its X-Forwarded-For names (the per-address limits), not under the proxy's",
  ),
  connectionIdleTimeoutMs: value(
    int(1000).default(120_000),
    'an HTTP connection that sends and receives nothing for this long is closed (one that never sends a request too); held heartbeats answer within half of it; WebSocket and SSE streams keep their own pings',
  ),
  requestBodyTimeoutMs: value(
    int(1000).default(60_000),
    'how long a JSON request body may take to arrive whole once the server starts reading it (a body sent a byte at a time otherwise held its bytes and its connection for ever, each byte resetting connectionIdleTimeoutMs); past it: 408 naming the setting, and the connection is closed; artifact uploads and imports, streamed to disk, have no total time: they get this long before minUploadBytesPerSecond applies',
  ),
  minUploadBytesPerSecond: value(
    int(1).default(1024),
    'the slowest average an artifact upload or import may come at, after its first requestBodyTimeoutMs (each byte earns it more time, so a large one over a slow link is never cut; one a byte a minute, which connectionIdleTimeoutMs never ends, held a connection and an open file for ever); slower: 408 naming the setting, and the connection is closed',
  ),
};

type Declared = typeof declared;

export const settings = Object.fromEntries(
  Object.entries(declared).map(([key, s]) => [
    key,
    {
      ...s,
      env: s.env ?? `RUNTRAIL_${words(key).join('_').toUpperCase()}`,
      flag: s.flag ?? words(key).join('-'),
    },
  ]),
) as { [K in keyof Declared]: Setting<Declared[K]['schema']> };

export type ConfigKey = keyof typeof settings;
export const configKeys = Object.keys(settings) as ConfigKey[];

/**
 * RUNTRAIL_* variables read outside the server's settings, so never
 * warned about: the config file (`resolveConfig`); the CLI's and SDKs'
 * server, token and run (`runtrail exec` sets RUNTRAIL_RUN_ID for its
 * command); and the test suites' and scripts' own knobs.
 */
export const CLIENT_ENV: readonly string[] = [
  'RUNTRAIL_CONFIG',
  'RUNTRAIL_URL',
  'RUNTRAIL_TOKEN',
  'RUNTRAIL_RUN_ID',
  'RUNTRAIL_TEST_DATABASE_URL',
  'RUNTRAIL_TEST_PG_BIN',
  'RUNTRAIL_FUZZ_SEED',
  'RUNTRAIL_FUZZ_HTTP',
  'RUNTRAIL_FUZZ_WS',
  'RUNTRAIL_SCREENSHOTS',
];

/**
 * One line per RUNTRAIL_* variable nobody reads (a misspelling is otherwise
 * silently a default), with the nearest known name when one is close.
 */
export function unknownEnvWarnings(env: Record<string, string | undefined>): string[] {
  const known = [...configKeys.map((key) => settings[key].env), ...CLIENT_ENV];
  const warnings: string[] = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('RUNTRAIL_') || known.includes(name)) continue;
    const nearest = nearestName(name, known);
    warnings.push(
      `unknown environment variable ${name}, ignored ` +
        (nearest
          ? `(did you mean ${nearest}?)`
          : '(`runtrail config` lists the settings; RUNTRAIL_URL, RUNTRAIL_TOKEN and RUNTRAIL_RUN_ID are read by the CLI and SDKs)'),
    );
  }
  return warnings;
}

/** The closest of `candidates` by edit distance, if close enough to be a likely misspelling (as commander suggests commands). */
function nearestName(name: string, candidates: readonly string[], prefix = 'RUNTRAIL_'): string | undefined {
  // Case aside: a config file's leaseTTL is leaseTtlMs misremembered, not three edits away.
  const word = name.slice(prefix.length).toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const other = candidate.slice(prefix.length).toLowerCase();
    const distance = editDistance(word, other);
    const similarity = (Math.max(word.length, other.length) - distance) / Math.max(word.length, other.length);
    if (similarity > 0.6 && (!best || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}

/** Optimal string alignment distance: a swap of two neighbours (PROT, PORT) counts as one edit, as a typo is. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The server's whole configuration, parsed and validated once:
 * explicit options (CLI flags) > RUNTRAIL_* environment > config file > defaults.
 * Nothing else in the server reads process.env.
 */
export const ServerConfig = z
  .strictObject(
    Object.fromEntries(configKeys.map((key) => [key, settings[key].schema])) as {
      [K in ConfigKey]: Declared[K]['schema'];
    },
  )
  // The largest body one request may send must fit an address's budget, or it would get 429, be retried, and never fit.
  .refine((config) => config.maxBodyBytesPerIp >= config.bodyLimitBytes, {
    path: ['maxBodyBytesPerIp'],
    error: 'must be at least bodyLimitBytes (one largest request must fit)',
  })
  // Below one page, a reader asking for the next page while its last is still in transit (an SDK catching up,
  // the dashboard paging) would be refused each time.
  .refine((config) => config.maxUnreadAnswerBytesPerIp >= config.readPageBytes, {
    path: ['maxUnreadAnswerBytesPerIp'],
    error: 'must be at least readPageBytes (one full page of events must fit)',
  });
export type ServerConfig = z.infer<typeof ServerConfig>;
export type ServerConfigInput = z.input<typeof ServerConfig>;

/** Where a value came from, as a user would spell it: `--port`, `RUNTRAIL_PORT`, `runtrail.json`, `default`. */
export type ConfigOrigin = string;

export interface ResolvedConfig {
  config: ServerConfig;
  origins: Record<ConfigKey, ConfigOrigin>;
  /** The config file read, if any. */
  file?: string;
  /** One line per RUNTRAIL_* variable that is neither a setting nor read by the CLI or SDKs; for the caller to show. */
  warnings: string[];
}

export interface ConfigSources {
  env?: Record<string, string | undefined>;
  /** A config file to read (`--config`); missing is an error. */
  file?: string;
  /** Where `runtrail.json` is looked for when no file is given (default: the working dir). */
  cwd?: string;
  /** How explicit options are named in origins and errors: `flag` (the CLI) or `option` (startServer). */
  explicit?: 'flag' | 'option';
}

export const CONFIG_FILE_NAME = 'runtrail.json';

const configError = (message: string, details?: Record<string, unknown>) =>
  new RuntrailError('invalid_request', `invalid configuration: ${message}`, details);

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw configError(`${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw configError(`${path} must hold one JSON object of settings`);
  }
  for (const key of Object.keys(parsed)) {
    if (!Object.hasOwn(settings, key)) {
      const nearest = nearestName(key, configKeys, '');
      throw configError(`${path}: unknown key "${key}" (${nearest ? `did you mean ${nearest}? ` : ''}known: ${configKeys.join(', ')})`);
    }
  }
  return parsed as Record<string, unknown>;
}

/** Merge the sources key by key, remembering where each value came from, then validate. */
export function resolveConfig(options: ServerConfigInput = {}, sources: ConfigSources = {}): ResolvedConfig {
  const env = sources.env ?? process.env;
  const givenFile = sources.file ?? env.RUNTRAIL_CONFIG;
  const fallbackFile = resolve(sources.cwd ?? process.cwd(), CONFIG_FILE_NAME);
  const file = givenFile ? resolve(sources.cwd ?? process.cwd(), givenFile) : existsSync(fallbackFile) ? fallbackFile : undefined;
  const fromFile = file ? readConfigFile(file) : {};
  const explicit = options as Record<string, unknown>;
  const merged: Record<string, unknown> = {};
  const origins = {} as Record<ConfigKey, ConfigOrigin>;
  for (const key of Object.keys(explicit)) {
    if (!Object.hasOwn(settings, key)) throw configError(`unknown option "${key}" (known: ${configKeys.join(', ')})`);
  }
  for (const key of configKeys) {
    const s = settings[key];
    const fromEnv = env[s.env];
    if (explicit[key] !== undefined) {
      merged[key] = explicit[key];
      origins[key] = sources.explicit === 'flag' ? `--${s.flag}` : 'option';
    } else if (fromEnv !== undefined && fromEnv !== '') {
      merged[key] = fromEnv;
      origins[key] = s.env;
    } else if (fromFile[key] !== undefined) {
      merged[key] = fromFile[key];
      origins[key] = file ?? CONFIG_FILE_NAME;
    } else {
      origins[key] = 'default';
    }
  }
  // Taken as unset, as a shell's `X=` usually means; said, since a deployment whose variable expanded to
  // nothing (RUNTRAIL_DATABASE_URL=) otherwise runs on a default (its own SQLite) with one line to tell.
  const emptyEnv = configKeys
    .filter((key) => env[settings[key].env] === '' && explicit[key] === undefined)
    .map((key) => `${settings[key].env} is set but empty, so it is taken as unset: ${key} comes from ${origins[key] === 'default' ? 'its default' : origins[key]}`);
  const result = ServerConfig.safeParse(merged);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => {
      const key = String(issue.path[0]) as ConfigKey;
      const origin = origins[key] ?? 'default';
      const shown = settings[key]?.secret ? JSON.stringify(masked(key, merged[key])) : JSON.stringify(merged[key]);
      return { key, origin, message: `${key} (${origin} = ${shown}): ${issue.message}` };
    });
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    throw configError(`${issues[0]!.message}${more}`, { issues });
  }
  return { config: result.data, origins, file, warnings: [...emptyEnv, ...unknownEnvWarnings(env)] };
}

/** The configuration from explicit options, the environment, the config file and defaults. */
export function loadConfig(
  options: ServerConfigInput = {},
  env: Record<string, string | undefined> = process.env,
  sources: Omit<ConfigSources, 'env'> = {},
): ServerConfig {
  return resolveConfig(options, { ...sources, env }).config;
}

/** The configuration as it may be printed or logged: secrets masked. */
export function describeConfig(config: ServerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of configKeys) {
    const v = config[key];
    out[key] = settings[key].secret && v !== undefined && v !== '' ? masked(key, v) : v;
  }
  return out;
}

/**
 * describeConfig, only the settings that differ from their defaults: what a
 * person reading a terminal needs (40 lines of defaults pushed the dashboard
 * URL off `npm start`'s screen); `runtrail config` shows every one.
 */
export function describeChangedConfig(config: ServerConfig): Record<string, unknown> {
  const all = describeConfig(config);
  const out: Record<string, unknown> = {};
  for (const key of configKeys) {
    const fallback: unknown = settings[key].schema.safeParse(undefined).data;
    if (JSON.stringify(config[key]) !== JSON.stringify(fallback)) out[key] = all[key];
  }
  return out;
}

/** A secret setting's value as it may be shown: `***`, or its URL with the password (also a `password=` parameter) as `***`. */
function masked(key: ConfigKey, value: unknown): string {
  if (settings[key].secret !== 'password' || typeof value !== 'string' || !URL.canParse(value)) return '***';
  const url = new URL(value);
  if (url.password) url.password = '***';
  if (url.searchParams.has('password')) url.searchParams.set('password', '***');
  return url.toString();
}
