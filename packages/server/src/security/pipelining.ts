import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * Serve the requests one connection pipelines (sends before reading the
 * answers) one after another, as nginx does: each waits until the answer
 * before it is finished (handed to the kernel). Node starts every request
 * it parses at once, so one write of 300 small requests for a page of
 * events, never read, built 300 pages (750 MiB of heap for 2 MiB pages;
 * past the heap with the 8 MiB of readPageBytes); Node stops reading the
 * socket only once the answers queued on it pass its buffer. In turn, a
 * connection holds one answer at most. Keep-alive clients that wait for
 * each answer, all of runtrail's and browsers, never wait here.
 */
export function servePipelinedInTurn(http: FastifyInstance): void {
  // The latest request's answer on each connection.
  const latest = new WeakMap<Socket, ServerResponse>();
  // A callback hook: it runs on every request, and the usual case is one lookup.
  http.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket;
    const before = latest.get(socket);
    latest.set(socket, reply.raw);
    if (before === undefined || before.writableFinished || before.destroyed) return done();
    before.once('close', () => done());
  });
}
