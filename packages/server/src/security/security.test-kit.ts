import { request as httpRequest } from 'node:http';
import WebSocket from 'ws';
import type { ServerMessage } from '@runtrail/protocol';
import type { RunningServer } from '../start.js';

/** Helpers of the security tests: requests and sockets with exactly the headers a test says. */

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function call<T = any>(
  server: RunningServer,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  else if (method !== 'GET' && method !== 'HEAD') headers['x-runtrail-client'] ??= 'test';
  const res = await fetch(server.url + path, {
    method,
    headers,
    body: options.body === undefined ? null : typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (err) {
    // An event stream or a page: the text is what the test looks at.
    void err;
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

/** A WebSocket that records its messages, its handshake refusal and its close code. */
export class TestSocket {
  readonly ws: WebSocket;
  readonly messages: ServerMessage[] = [];
  refusedStatus: number | null = null;
  closeCode: number | null = null;
  closeReason = '';
  readonly settled: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    this.ws.on('message', (data) => this.messages.push(JSON.parse(data.toString()) as ServerMessage));
    this.ws.on('unexpected-response', (_req, res) => {
      this.refusedStatus = res.statusCode ?? 0;
      res.resume();
      this.ws.terminate();
    });
    // Errors end in 'close' (or the refusal above); the test asserts on those.
    this.ws.on('error', () => undefined);
    this.settled = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
      });
    });
  }

  opened(): Promise<boolean> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.ws.once('open', () => resolve(true));
      void this.settled.then(() => resolve(false));
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  close(): void {
    this.ws.terminate();
  }
}

export function streamUrl(server: RunningServer, query = ''): string {
  return `${server.url.replace(/^http/, 'ws')}/api/v1/stream${query}`;
}

/** Read an SSE response until `until` matches the text so far, or it ends. */
export async function readSse(
  server: RunningServer,
  path: string,
  headers: Record<string, string>,
  until: (text: string) => boolean,
): Promise<{ status: number; text: string; ended: boolean }> {
  const controller = new AbortController();
  const res = await fetch(server.url + path, { headers, signal: controller.signal });
  if (!res.ok || !res.body) return { status: res.status, text: await res.text(), ended: true };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { status: res.status, text, ended: true };
    text += decoder.decode(value, { stream: true });
    if (until(text)) {
      controller.abort();
      return { status: res.status, text, ended: false };
    }
  }
}

/** A GET over node:http, which sends the Host header given (fetch always sends the real one). */
export function rawGet(server: RunningServer, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
