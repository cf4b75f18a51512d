import type { Command } from 'commander';
import { RuntrailClient, rootOfApiUrl } from '@runtrail/client';
import { RuntrailError } from '@runtrail/protocol';
import { CLI_TOKEN_HINT, defaultServerUrl, rememberServer } from './options.js';

// How a client command reaches its server. Apart from options.ts so that only the commands that
// call a server load the SDK, from their actions (commands/*.ts register them without it).

/** The server a client command talks to: --server, else RUNTRAIL_URL, else the local default. */
export function serverUrl(cmd: Command): string {
  return resolveServer(cmd).url;
}

/** serverUrl, and whether it was given (--server, RUNTRAIL_URL) rather than the default. */
export function resolveServer(cmd: Command): { url: string; explicit: boolean } {
  const opts = cmd.optsWithGlobals<{ server?: string }>();
  const server = opts.server
    ? { url: checkedUrl(opts.server, '--server'), explicit: true }
    : process.env.RUNTRAIL_URL
      ? { url: checkedUrl(process.env.RUNTRAIL_URL, 'RUNTRAIL_URL'), explicit: true }
      : { url: defaultServerUrl(), explicit: false };
  rememberServer(server.url);
  return server;
}

/** An http(s) URL, or an error saying so: `127.0.0.1:4310` is not "a server that does not answer". */
function checkedUrl(raw: string, from: string): string {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch (err) {
    // Not parseable at all: reported just below, with the same message as a wrong scheme.
    void err;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new RuntrailError('invalid_request', `invalid URL "${raw}" (${from}): give the whole URL with its scheme, e.g. http://127.0.0.1:4310`);
  }
  // Refused here too (the client would refuse it) to name where it came from: --url or RUNTRAIL_URL.
  const root = rootOfApiUrl(raw);
  if (root !== null) {
    throw new RuntrailError('invalid_request', `${from} ${raw} is the API's URL; give the server's, without /api/v1: ${root}`);
  }
  return raw.replace(/\/+$/, '');
}

/** How a client command reaches its server: the URL, and RUNTRAIL_TOKEN when the server needs a token. */
export function clientOptions(cmd: Command): { url: string; token: string | undefined } {
  return { url: serverUrl(cmd), token: process.env.RUNTRAIL_TOKEN || undefined };
}

/** The client of a command's server (see clientOptions); a 401 without a token names RUNTRAIL_TOKEN, not the SDK's option. */
export function clientFor(cmd: Command): RuntrailClient {
  return new RuntrailClient({ ...clientOptions(cmd), tokenHint: CLI_TOKEN_HINT });
}

