import { RuntrailError } from '@runtrail/protocol';

/**
 * Why PostgreSQL could not be used as the store, in one line that names the
 * database (user, host, port, database; never the password) and says what
 * to do. Opening is where a wrong URL shows (`runtrail serve --database`,
 * `runtrail migrate`): pg's own errors say `database "x" does not exist`
 * or `connect ECONNREFUSED` with a stack, and the CLI printed the stack.
 * Errors that are not about reaching or entering the database (a schema
 * migrated by a newer runtrail) are passed on as they are.
 */
export function explainOpenFailure(err: unknown, connectionString: string, connectTimeoutMs: number, schema = 'public'): unknown {
  const where = describeTarget(connectionString);
  const code = codeOf(err);
  // pg's words, not the `unavailable` asUnavailable made of them (a refused login is one now, as it is on a running node).
  const pgError = err instanceof RuntrailError && err.cause instanceof Error ? err.cause : err;
  const message = (pgError as { message?: string })?.message ?? String(pgError);
  const unavailable = (why: string) => new RuntrailError('unavailable', `cannot use the PostgreSQL database ${where.text}: ${why}`, { code });
  // pg parses the URL only when it first connects, and Node's TypeError came out
  // with its stack (`--database postgres://u@h:notaport/db`). Its `input` holds
  // the password, so nothing of the URL is repeated here.
  if (code === 'ERR_INVALID_URL') {
    return new RuntrailError(
      'invalid_request',
      'cannot use the PostgreSQL database: its URL is not a valid URL (postgres://user:password@host:5432/database); ' +
        'the port must be a number, and @ : / ? # in the user name or password must be percent-encoded (@ as %40)',
    );
  }
  switch (code) {
    case 'ECONNREFUSED':
      return unavailable(`nothing accepts connections at ${where.server} (ECONNREFUSED); is PostgreSQL running there, and are the URL's host and port right?`);
    case 'ENOENT':
      // A socket directory (?host=/var/run/postgresql) with no PostgreSQL socket in it.
      return unavailable(`there is no PostgreSQL socket in ${where.host} for port ${where.server.split(':').pop()} (ENOENT); is PostgreSQL running there, and are the URL's host (the socket directory) and port right?`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return unavailable(`the host ${where.host} is not known (${code}); check the URL's host`);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
      return unavailable(`${where.server} does not answer (${code}); check the URL's host and port, and any firewall between`);
    case '3D000':
      return unavailable(`there is no database "${where.database}" (3D000); create it (createdb ${where.createdbArgs}) or name one that exists`);
    case '28P01':
      return unavailable(`the password of user "${where.user}" was refused (28P01)`);
    case '28000':
      return unavailable(`${message} (28000); check the URL's user, or the server's pg_hba.conf`);
    case '3F000': // The schema exists, and the user has no USAGE on it: pg finds no schema to create in.
    case '42501':
      // An existing schema the user may not create in: CREATE on the database (which it may have) is not the grant it lacks.
      if (code === '3F000' || message.includes(`permission denied for schema ${schema}`)) {
        return unavailable(
          `${message} (${code}): schema ${schema} exists and this user may not create in it; ` +
            `make the user its owner (ALTER SCHEMA ${schema} OWNER TO ${where.user || 'the user'}), or name another schema with --database-schema`,
        );
      }
      return unavailable(
        `${message} (42501): runtrail makes its schema and tables when it starts; grant the user CREATE on the database, or name a schema it may use with --database-schema`,
      );
  }
  // pg's errors of these have no code: the message is all there is (kept as the cause of the `unavailable` made of them).
  const reason = causeText(err) ?? message;
  if (/does not support SSL/i.test(reason)) {
    return unavailable(`the server at ${where.server} does not accept SSL, and the URL asks for it (sslmode); drop sslmode from the URL, or turn ssl on in the server`);
  }
  if (/connection timeout|timeout exceeded when trying to connect/i.test(reason)) {
    return unavailable(
      `${where.server} accepted the connection but did not answer as PostgreSQL within ${connectTimeoutMs} ms; is PostgreSQL listening on that port (it is usually 5432), or is a firewall or proxy holding the connection?`,
    );
  }
  if (/Connection terminated unexpectedly/i.test(reason)) {
    return unavailable(
      `${where.server} closed the connection before answering as PostgreSQL; is it PostgreSQL's port (it is usually 5432), and does a firewall or proxy between let the connection through?`,
    );
  }
  return err;
}

/** The text an `unavailable` error made by asUnavailable keeps of what pg said, when pg gave no code. */
function causeText(err: unknown): string | undefined {
  if (!RuntrailError.isCode(err, 'unavailable')) return undefined;
  const cause = (err.details as { cause?: unknown } | undefined)?.cause;
  return typeof cause === 'string' ? cause : undefined;
}

/** pg's SQLSTATE or Node's network code: on the error, or kept in the details of the `unavailable` error made of it. */
function codeOf(err: unknown): string | undefined {
  if (RuntrailError.isCode(err, 'unavailable')) {
    const cause = (err.details as { cause?: unknown } | undefined)?.cause;
    return typeof cause === 'string' ? cause : undefined;
  }
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

interface Target {
  text: string;
  server: string;
  host: string;
  user: string;
  database: string;
  createdbArgs: string;
}

/** The parts of a postgres:// URL worth naming (what libpq would default, where the URL leaves them out). */
function describeTarget(connectionString: string): Target {
  // Not a URL (a key=value connection string): pg reads it; only the description is vaguer.
  const url = URL.canParse(connectionString) ? new URL(connectionString) : null;
  // As pg reads it: ?host= (a socket directory) wins over the URL's host.
  const host = url?.searchParams.get('host') || url?.hostname || 'localhost';
  const port = url?.port || '5432';
  // pg sends no user at all when none of these names one (USER is often unset in a container):
  // naming "postgres" there sent the operator after a user the server never saw.
  const user = decodeURIComponent(url?.username ?? '') || process.env.PGUSER || process.env.USER || '';
  const database = decodeURIComponent(url?.pathname.replace(/^\//, '') ?? '') || user;
  const as = user ? `as user "${user}"` : 'with no user name (the URL names none, and PGUSER and USER are unset)';
  return {
    text: url ? `"${database}" at ${host}:${port} ${as}` : 'named by the connection string',
    server: `${host}:${port}`,
    host,
    user,
    database,
    createdbArgs: `-h ${host} -p ${port}${user ? ` -U ${user}` : ''} ${database}`,
  };
}
