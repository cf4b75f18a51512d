import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuntrailError } from '@runtrail/protocol';
import { CLIENT_ENV, configKeys, describeConfig, resolveConfig, settings, ServerConfig, unknownEnvWarnings } from './config.js';
import { tempDir } from '@runtrail/test-support';
import { SECURITY_HEADERS } from './security/index.js';

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir('runtrail-config-');
});
afterEach(() => dir.remove());

const errorOf = (fn: () => unknown): RuntrailError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof RuntrailError) return err;
    throw err;
  }
  throw new Error('expected an error');
};

describe('configuration', () => {
  it('takes each key from flags, else RUNTRAIL_* env, else the config file, else the default, and says where from', () => {
    writeFileSync(
      join(dir.path, 'runtrail.json'),
      JSON.stringify({ port: 1111, leaseTtlMs: 5000, reaperIntervalMs: 700, concurrency: 2 }),
    );
    const env = { RUNTRAIL_PORT: '2222', RUNTRAIL_LEASE_TTL_MS: '6000', RUNTRAIL_URL: 'ignored: a client setting' };
    const { config, origins, file } = resolveConfig({ port: 3333 }, { env, cwd: dir.path, explicit: 'flag' });
    expect(file).toBe(join(dir.path, 'runtrail.json'));
    expect(config.port).toBe(3333);
    expect(origins.port).toBe('--port');
    expect(config.leaseTtlMs).toBe(6000);
    expect(origins.leaseTtlMs).toBe('RUNTRAIL_LEASE_TTL_MS');
    expect(config.reaperIntervalMs).toBe(700);
    expect(origins.reaperIntervalMs).toBe(file);
    expect(config.host).toBe('127.0.0.1');
    expect(origins.host).toBe('default');
  });

  it('reads the file named by --config (or RUNTRAIL_CONFIG) instead of ./runtrail.json', () => {
    writeFileSync(join(dir.path, 'runtrail.json'), JSON.stringify({ port: 1 }));
    writeFileSync(join(dir.path, 'other.json'), JSON.stringify({ port: 2 }));
    expect(resolveConfig({}, { env: {}, cwd: dir.path, file: 'other.json' }).config.port).toBe(2);
    expect(resolveConfig({}, { env: { RUNTRAIL_CONFIG: 'other.json' }, cwd: dir.path }).config.port).toBe(2);
    expect(errorOf(() => resolveConfig({}, { env: {}, cwd: dir.path, file: 'missing.json' })).message).toContain(
      'cannot read',
    );
  });

  it('refuses an invalid value naming the key, where it came from and what is wrong', () => {
    const fromEnv = errorOf(() => resolveConfig({}, { env: { RUNTRAIL_REAPER_INTERVAL_MS: 'soon' }, cwd: dir.path }));
    expect(fromEnv.message).toMatch(/^invalid configuration: reaperIntervalMs \(RUNTRAIL_REAPER_INTERVAL_MS = "soon"\): /);
    const fromFlag = errorOf(() => resolveConfig({ port: 70000 }, { env: {}, cwd: dir.path, explicit: 'flag' }));
    expect(fromFlag.message).toMatch(/port \(--port = 70000\): .*65535/);
    writeFileSync(join(dir.path, 'runtrail.json'), JSON.stringify({ logLevel: 'loud' }));
    expect(errorOf(() => resolveConfig({}, { env: {}, cwd: dir.path })).message).toMatch(/logLevel \(.*runtrail\.json = "loud"\)/);
    writeFileSync(join(dir.path, 'runtrail.json'), JSON.stringify({ leaseTTL: 5 }));
    expect(errorOf(() => resolveConfig({}, { env: {}, cwd: dir.path })).message).toContain('unknown key "leaseTTL" (did you mean leaseTtlMs? known: ');
    writeFileSync(join(dir.path, 'runtrail.json'), JSON.stringify({ databseSchema: 'rt' }));
    expect(errorOf(() => resolveConfig({}, { env: {}, cwd: dir.path })).message).toContain('unknown key "databseSchema" (did you mean databaseSchema? known: ');
    writeFileSync(join(dir.path, 'runtrail.json'), '{port: 1}');
    expect(errorOf(() => resolveConfig({}, { env: {}, cwd: dir.path })).message).toContain('is not JSON');
  });

  it('takes a number setting only as whole digits, and says which numbers it wants', () => {
    const refused = (flags: Record<string, unknown>) => errorOf(() => resolveConfig(flags, { env: {}, cwd: dir.path, explicit: 'flag' })).message;
    // An empty or blank value (a template whose variable was unset) was 0: no statement timeout, no executor.
    expect(refused({ databaseStatementTimeoutMs: '' })).toBe('invalid configuration: databaseStatementTimeoutMs (--database-statement-timeout-ms = ""): a whole number of at least 0');
    expect(refused({ concurrency: ' ' })).toBe('invalid configuration: concurrency (--concurrency = " "): a whole number of at least 0');
    expect(refused({ port: '0x10' })).toBe('invalid configuration: port (--port = "0x10"): a whole number from 0 to 65535');
    expect(refused({ databasePoolSize: 'abc' })).toBe('invalid configuration: databasePoolSize (--database-pool-size = "abc"): a whole number from 2 to 1000');
    expect(refused({ databasePoolSize: '2.5' })).toBe('invalid configuration: databasePoolSize (--database-pool-size = "2.5"): a whole number from 2 to 1000');
    expect(refused({ databasePoolSize: '1' })).toBe('invalid configuration: databasePoolSize (--database-pool-size = "1"): a whole number from 2 to 1000');
    const { config } = resolveConfig({ databasePoolSize: ' 12 ' }, { env: { RUNTRAIL_CONCURRENCY: '3' }, cwd: dir.path });
    expect([config.databasePoolSize, config.concurrency]).toEqual([12, 3]);
  });

  it('says which values an on/off setting takes, not just that the value is invalid', () => {
    const fromEnv = errorOf(() => resolveConfig({}, { env: { RUNTRAIL_INSECURE: 'yes' }, cwd: dir.path }));
    expect(fromEnv.message).toBe('invalid configuration: insecure (RUNTRAIL_INSECURE = "yes"): true or false (1 or 0 in the environment)');
    expect(resolveConfig({}, { env: { RUNTRAIL_INSECURE: '1' }, cwd: dir.path }).config.insecure).toBe(true);
  });

  it('shows which database a node uses with only its password masked, and the admin token not at all', () => {
    const env = {
      RUNTRAIL_DATABASE_URL: 'postgres://runtrail:s3cret-pw@db.internal:5432/runtrail?application_name=x&password=other-pw',
      RUNTRAIL_ADMIN_TOKEN: 'an-admin-token-of-16+',
    };
    const shown = describeConfig(resolveConfig({}, { env, cwd: dir.path }).config);
    expect(shown.databaseUrl).toBe('postgres://runtrail:***@db.internal:5432/runtrail?application_name=x&password=***');
    expect(shown.adminToken).toBe('***');
    const refused = errorOf(() => resolveConfig({}, { env: { RUNTRAIL_DATABASE_URL: 'mysql://runtrail:s3cret-pw@db/runtrail' }, cwd: dir.path }));
    expect(refused.message).toBe(
      'invalid configuration: databaseUrl (RUNTRAIL_DATABASE_URL = "mysql://runtrail:***@db/runtrail"): a postgres:// or postgresql:// URL',
    );
  });

  it("refuses a database URL ending in a line break or space (a secret file's last newline), which pg would take into the database's name", () => {
    // Before: accepted; pg asked for database "runtrail\n", and the start failed with 'there is no database "runtrail"', which there was.
    const refused = errorOf(() => resolveConfig({}, { env: { RUNTRAIL_DATABASE_URL: 'postgres://runtrail:s3cret-pw@db.internal:5432/runtrail\n' }, cwd: dir.path }));
    expect(refused.message).toBe(
      'invalid configuration: databaseUrl (RUNTRAIL_DATABASE_URL = "postgres://runtrail:***@db.internal:5432/runtrail"): ' +
        "has spaces or a line break at its start or end (a secret file's last newline?); remove them",
    );
  });

  it('takes linkPreviewHosts as origins, spelled canonically, none by default, and refuses anything else naming it', () => {
    expect(resolveConfig({}, { env: {}, cwd: dir.path }).config.linkPreviewHosts).toEqual([]);
    const env = { RUNTRAIL_LINK_PREVIEW_HOSTS: 'https://Reports.Example.com:443/, http://127.0.0.1:9000,https://*.cdn.example.net' };
    expect(resolveConfig({}, { env, cwd: dir.path }).config.linkPreviewHosts).toEqual([
      'https://reports.example.com',
      'http://127.0.0.1:9000',
      'https://*.cdn.example.net',
    ]);
    const refused = (value: string) =>
      errorOf(() => resolveConfig({ linkPreviewHosts: value }, { env: {}, cwd: dir.path, explicit: 'flag' })).message;
    for (const [value, why] of [
      // Each of these would have put a source of its own, or a directive, into the CSP header.
      ['https://a.example; script-src *', 'write scheme://host[:port] and nothing more'],
      ['https://a.example https://b.example', 'write scheme://host[:port] and nothing more'],
      ['*', 'write scheme://host[:port] and nothing more'],
      ['https:', 'write scheme://host[:port] and nothing more'],
      ['a.example', 'write scheme://host[:port] and nothing more'],
      ['https://a.example/reports', 'write scheme://host[:port] and nothing more'],
      ['https://user@a.example', 'write scheme://host[:port] and nothing more'],
      ['https://*', 'is not a host name'],
      ['https://a.*.example', 'is not a host name'],
      ['ftp://a.example', 'the scheme must be http or https'],
      ['https://*.com', 'would allow every name under a top-level domain'],
      ['https://*.10.0.0.1', 'a wildcard applies to host names, not addresses'],
      ['https://a.example:0', 'the port must be from 1 to 65535'],
      ['https://a.example:70000', 'the port must be from 1 to 65535'],
      ['http://0x7f.1', 'neither a host name nor an IPv4 address'],
      ['http://127.1', 'neither a host name nor an IPv4 address'],
      ['https://bücher.example', 'ASCII form (xn--…)'],
      // Before: taken, and written into a CSP whose browsers ignore it, under previews offered and refused.
      ['http://[::1]:8080', 'cannot name an IPv6 address'],
      ['http://[0:0:0:0:0:0:0:1]', 'cannot name an IPv6 address'],
    ] as const) {
      const message = refused(`https://ok.example,${value}`);
      expect(message, value).toContain(`invalid configuration: linkPreviewHosts (--link-preview-hosts = "https://ok.example,${value}"): ${JSON.stringify(value)} is not an origin`);
      expect(message, value).toContain(why);
    }
  });

  it('refuses more linkPreviewHosts than 32, or ones making a Content-Security-Policy over 3 KiB, at start-up, naming the setting, the count or size, and the bound', () => {
    // Before: any number taken, each written three times into every answer's headers, past what a proxy accepts.
    const hosts = (n: number, width = 1) => Array.from({ length: n }, (_, i) => `https://h${i}${'x'.repeat(width)}.example`);
    const refused = (value: string[]) => errorOf(() => resolveConfig({ linkPreviewHosts: value }, { env: {}, cwd: dir.path, explicit: 'option' })).message;
    expect(resolveConfig({ linkPreviewHosts: hosts(32) }, { env: {}, cwd: dir.path }).config.linkPreviewHosts).toHaveLength(32);
    expect(refused(hosts(33))).toMatch(/^invalid configuration: linkPreviewHosts \(.*\): 33 origins, more than the 32 allowed: .*Content-Security-Policy header/);
    // 20 origins of 60 characters: few enough, but a policy of about 4 KB.
    const long = hosts(20, 40);
    // The policy with no origin, and each origin written three times after a space.
    const bytes = Buffer.byteLength(SECURITY_HEADERS['content-security-policy']!) + 3 * long.reduce((sum, origin) => sum + 1 + origin.length, 0);
    expect(bytes).toBeGreaterThan(3072);
    expect(refused(long)).toMatch(new RegExp(`^invalid configuration: linkPreviewHosts \\(.*\\): 20 origins make a Content-Security-Policy header of ${bytes} bytes, more than the 3072 allowed`));
    // The same through the environment, as `runtrail serve` reads it.
    expect(errorOf(() => resolveConfig({}, { env: { RUNTRAIL_LINK_PREVIEW_HOSTS: hosts(40).join(',') }, cwd: dir.path })).message).toMatch(
      /^invalid configuration: linkPreviewHosts \(RUNTRAIL_LINK_PREVIEW_HOSTS = .*\): 40 origins, more than the 32 allowed/,
    );
  });

  it('declares every key once: env, flag and description derived from the one table, all distinct', () => {
    expect(configKeys).toEqual(Object.keys(ServerConfig.shape));
    const envs = configKeys.map((k) => settings[k].env);
    const flags = configKeys.map((k) => settings[k].flag);
    expect(new Set(envs).size).toBe(configKeys.length);
    expect(new Set(flags).size).toBe(configKeys.length);
    expect(settings.leaseTtlMs.env).toBe('RUNTRAIL_LEASE_TTL_MS');
    expect(settings.leaseTtlMs.flag).toBe('lease-ttl-ms');
    for (const key of configKeys) expect(settings[key].description.length).toBeGreaterThan(5);
  });
});

describe('the README configuration table', () => {
  it('lists every key with its flag and environment variable', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const key of configKeys) {
      const { flag, env } = settings[key];
      expect(readme, `README configuration row for ${key}`).toContain(`| \`${key}\` (\`--${flag}\`, \`${env}\`) |`);
    }
  });

  it('lists no key the configuration does not have, and gives each key its real default', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Configuration\n'), readme.indexOf('\n## Metrics\n'));
    const rows = [...section.matchAll(/^\| `(\w+)` \(`--[\w-]+`, `\w+`\) \| ([^|]*) \|/gm)].map((m) => ({ key: m[1]!, cell: m[2]!.trim() }));
    expect(rows.map((r) => r.key)).toEqual(configKeys);
    // Sizes in bytes, durations (settings in ms) in seconds or minutes.
    const units: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, s: 1000, min: 60_000 };
    for (const { key, cell } of rows) {
      const fallback: unknown = settings[key as (typeof configKeys)[number]].schema.parse(undefined);
      const what = `README default of ${key}: "${cell}"`;
      if (typeof fallback === 'number') {
        const sized = /^(\d+) (KiB|MiB|GiB)$/.exec(cell);
        expect(sized ? Number(sized[1]) * units[sized[2]!]! : Number(cell), what).toBe(fallback);
      } else if (key === 'node') {
        expect(cell, what).toBe('the hostname');
      } else if (typeof fallback === 'string' || typeof fallback === 'boolean') {
        expect(cell, what).toBe(String(fallback));
      } else if (Array.isArray(fallback)) {
        expect(fallback, what).toEqual([]);
        expect(cell, what).toMatch(/^none/);
      } else {
        // Unset by default: the cell says what happens then, never a value the key does not have.
        expect(fallback, what).toBeUndefined();
        expect(cell, what).not.toMatch(/^\d/);
      }
    }
  });

  it("gives the Security section's limits the defaults the configuration has", () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('\n**Limits.**'), readme.indexOf('\n**Bad input.**'));
    const rows = [...section.matchAll(/^\| [^|]*\(`(\w+)`[^|]*\| ([^|]*) \|/gm)].map((m) => ({ key: m[1]!, cell: m[2]!.trim() }));
    expect(rows.length).toBeGreaterThanOrEqual(10);
    // Sizes in bytes, durations (settings in ms) in seconds or minutes.
    const units: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, s: 1000, min: 60_000 };
    for (const { key, cell } of rows) {
      expect(configKeys, `README limit row for ${key}`).toContain(key);
      const [, digits, unit, burst] = /^([\d,]+)(?: (KiB|MiB|GiB|s|min)|\/s(?:, bursts of ([\d,]+))?)?$/.exec(cell) ?? [];
      expect(digits, `README limit of ${key}: "${cell}"`).toBeDefined();
      const n = Number(digits!.replace(/,/g, '')) * (unit ? units[unit]! : 1);
      expect(n, `README limit of ${key}: "${cell}"`).toBe(settings[key as (typeof configKeys)[number]].schema.parse(undefined));
      // A rate's burst is twice the rate (the token bucket's capacity).
      if (burst !== undefined) expect(Number(burst.replace(/,/g, '')), `README burst of ${key}`).toBe(2 * n);
    }
  });

  it('warns about each unknown RUNTRAIL_* variable, naming the nearest known one, and about none the CLI, SDKs or tests use', () => {
    const env = {
      RUNTRAIL_LEASE_TTL: '5',
      RUNTRAIL_PROT: '1',
      RUNTRAIL_XYZZY: 'x',
      RUNTRAIL_LEASE_TTL_MS: '6000',
      RUNTRAIL_URL: 'http://127.0.0.1:1',
      RUNTRAIL_TOKEN: 't',
      NOT_RUNTRAIL_FOO: 'ignored',
    };
    expect(unknownEnvWarnings(env)).toEqual([
      'unknown environment variable RUNTRAIL_LEASE_TTL, ignored (did you mean RUNTRAIL_LEASE_TTL_MS?)',
      'unknown environment variable RUNTRAIL_PROT, ignored (did you mean RUNTRAIL_PORT?)',
      'unknown environment variable RUNTRAIL_XYZZY, ignored (`runtrail config` lists the settings; RUNTRAIL_URL, RUNTRAIL_TOKEN and RUNTRAIL_RUN_ID are read by the CLI and SDKs)',
    ]);
    expect(resolveConfig({}, { env, cwd: dir.path }).warnings).toEqual(unknownEnvWarnings(env));
    const known = Object.fromEntries([...configKeys.map((k) => settings[k].env), ...CLIENT_ENV].map((name) => [name, '']));
    expect(unknownEnvWarnings(known)).toEqual([]);
  });

  it('says a setting whose variable is set but empty is taken as unset, naming where its value comes from', () => {
    // A deployment's RUNTRAIL_DATABASE_URL that expanded to nothing ran on its own SQLite with no word but the start-up line.
    writeFileSync(join(dir.path, 'runtrail.json'), JSON.stringify({ port: 4399 }));
    const resolved = resolveConfig({ logLevel: 'warn' }, { env: { RUNTRAIL_DATABASE_URL: '', RUNTRAIL_PORT: '', RUNTRAIL_LOG_LEVEL: '' }, cwd: dir.path });
    expect(resolved.config.databaseUrl).toBeUndefined();
    expect(resolved.warnings).toEqual([
      'RUNTRAIL_PORT is set but empty, so it is taken as unset: port comes from ' + join(dir.path, 'runtrail.json'),
      'RUNTRAIL_DATABASE_URL is set but empty, so it is taken as unset: databaseUrl comes from its default',
    ]);
  });

  it("knows every RUNTRAIL_* variable the repository's code, clients, scripts, CI and benchmarks use", () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const names = new Set<string>();
    // These tests spell unknown names on purpose, to be warned about.
    const deliberatelyUnknown = ['packages/server/src/config.test.ts', 'packages/cli/test/cli.test.ts'];
    const walk = (path: string): void => {
      for (const entry of readdirSync(path)) {
        if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.') && entry !== '.ci') continue;
        const full = join(path, entry);
        if (deliberatelyUnknown.some((file) => full.endsWith(file))) continue;
        if (statSync(full).isDirectory()) walk(full);
        else if (/\.(ts|tsx|mjs|js|py|sh|json)$|^run$/.test(entry)) {
          for (const m of readFileSync(full, 'utf8').matchAll(/\bRUNTRAIL_[A-Z0-9_]*[A-Z0-9]\b/g)) names.add(m[0]);
        }
      }
    };
    for (const top of ['packages', 'clients', 'scripts', '.ci', 'bench', 'test-support']) walk(join(root, top));
    expect(names.size).toBeGreaterThan(10);
    // Test names spell variables in prose (test_..._from_RUNTRAIL_TOKEN_produces): those are not variables.
    const env = Object.fromEntries([...names].filter((n) => !/[a-z]/.test(n)).map((n) => [n, '1']));
    expect(unknownEnvWarnings(env)).toEqual([]);
  });
});

