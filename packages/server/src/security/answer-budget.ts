import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RuntrailError } from '@runtrail/protocol';

/** Bytes a streamed answer holds in memory for its client until its socket takes them, counted in its address's budget. */
export interface UnreadAnswerBytes {
  /** Count these; throws the budget's refusal when they would pass it while other answers of the address hold some. */
  take(bytes: number): void;
  /** Let go of bytes taken: handed to the socket. What is still taken is let go when the connection closes. */
  release(bytes: number): void;
}

/** A request's share of maxUnreadAnswerBytesPerIp, for an answer that holds bytes before it sends them (an export). */
export type UnreadAnswerShare = (request: FastifyRequest, reply: FastifyReply) => UnreadAnswerBytes;

/** Answers up to this size are not counted (at most 3 bytes per UTF-16 unit of a string answer). */
const SMALL_ANSWER_BYTES = 8 * 1024;

/**
 * Bound the bytes of answers one client address has not yet taken. An
 * answer built in memory (a page of events, a list of runs, the OpenAPI
 * document) is queued on its socket until the client reads it, and a
 * client that never reads held it there until the idle timeout: 200
 * keep-alive connections, each asking for a page of events (8 MiB) and
 * reading none, made the server hold 1.6 GiB (4,096 connections, 32 GiB).
 * An answer is counted when it is handed to its socket and let go when its
 * socket has flushed it to the kernel, or closed.
 *
 * An answer that would pass the budget is dropped and answered 429 with
 * Retry-After naming the setting (the SDKs retry it), not kept waiting:
 * waiting would hold the very bytes the budget bounds. A request that comes
 * while its address already holds the budget is refused before its answer
 * is built. A client that reads its answers holds only what is in transit
 * (the dashboard paging, `runtrail export`, an SDK catching up: one page
 * at a time per run), tens of full pages short of the default; it never
 * meets this. An address holding nothing always gets its answer, however
 * large, so no answer is refused for ever. Streamed answers are not
 * counted: artifact downloads and SSE are read from their source in small
 * chunks as the socket takes them. An export is streamed in small pieces
 * too, but builds each events file of its archive (up to 16 MiB) in memory
 * before its first byte goes (a tar entry's header gives its size): it
 * counts those bytes in the share this returns until it hands them to the
 * socket, and is cut with this refusal when they would pass the budget
 * while other answers of its address hold some. 200 exports that never
 * read held 3.1 GiB (16 MiB each) before.
 */
export function limitUnreadAnswers(
  http: FastifyInstance,
  options: { maxBytesPerAddress: number; clientKey: (request: IncomingMessage) => string },
): UnreadAnswerShare {
  const max = options.maxBytesPerAddress;
  const held = new Map<string, number>();
  const refusal = (address: string): RuntrailError =>
    new RuntrailError(
      'rate_limited',
      `client address ${address} has more than ${max} bytes of answers it has not read yet (maxUnreadAnswerBytesPerIp on the server); read the answers you asked for before asking for more`,
      { retryAfterMs: 1000, limit: max },
    );
  const add = (address: string, bytes: number): void => {
    const left = (held.get(address) ?? 0) + bytes;
    if (left <= 0) held.delete(address);
    else held.set(address, left);
  };
  const share = (address: string, reply: FastifyReply): UnreadAnswerBytes => {
    let mine = 0;
    let watching = false;
    return {
      take(bytes) {
        const now = held.get(address) ?? 0;
        // As for a built answer: one whose address holds nothing else goes on, so no export is refused for ever.
        if (now - mine > 0 && now + bytes > max) throw refusal(address);
        add(address, bytes);
        mine += bytes;
        if (watching) return;
        watching = true;
        // A stream cut or left unread: what it still held is gone with its connection.
        reply.raw.once('close', () => {
          add(address, -mine);
          mine = 0;
        });
      },
      release(bytes) {
        const letGo = Math.min(bytes, mine);
        add(address, -letGo);
        mine -= letGo;
      },
    };
  };
  // Callback hooks, not async ones: they run on every request (an append too), and so does as
  // little as they can: no address is looked up while no answer is held.
  http.addHook('onRequest', (request, _reply, done) => {
    if (held.size === 0) return done();
    const address = options.clientKey(request.raw);
    if ((held.get(address) ?? 0) >= max) return done(refusal(address));
    done();
  });
  http.addHook('onSend', (request, reply, payload, done) => {
    // A small answer (an append's) is not counted, so that the answers every producer asks for cost no
    // more: a connection holds one answer at a time (servePipelinedInTurn), so what such answers can
    // hold is bounded by maxHttpConnectionsPerIp × SMALL_ANSWER_BYTES (4,096 × 8 KiB: 32 MiB).
    const small = typeof payload === 'string' && payload.length * 3 <= SMALL_ANSWER_BYTES;
    const bytes = small ? 0 : typeof payload === 'string' ? Buffer.byteLength(payload) : Buffer.isBuffer(payload) ? payload.length : 0;
    if (bytes <= SMALL_ANSWER_BYTES) return done(null, payload);
    const address = options.clientKey(request.raw);
    const now = held.get(address) ?? 0;
    // The refusal's own small answer comes back through here: it is always let through.
    if (now > 0 && now + bytes > max && reply.statusCode !== 429) return done(refusal(address));
    add(address, bytes);
    // 'close' comes once the answer is flushed (its 'finish') or its connection is gone.
    reply.raw.once('close', () => add(address, -bytes));
    done(null, payload);
  });
  return (request, reply) => share(options.clientKey(request.raw), reply);
}
