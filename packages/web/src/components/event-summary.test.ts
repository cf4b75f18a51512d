import type { RunEvent } from '@runtrail/protocol';
import { expect, test } from 'vitest';
import { eventSummary } from './event-summary.js';

const ev = (type: string, data: unknown): RunEvent => ({ runId: 'r', seq: 1, type, ts: 0, data });
const labels = new Map([['c1', 'Evaluating doc_1 with gpt-4o']]);
const say = (type: string, data: unknown) => eventSummary(ev(type, data), labels);

test('each kind of event reads as words, numbers at a readable precision, not as its JSON', () => {
  expect(say('metric', { name: 'loss', value: 0.011604570060700484, step: 198 })).toBe('loss = 0.0116 at step 198');
  expect(say('metric', { name: 'latency_ms', value: 2385 })).toBe('latency_ms = 2,385');
  expect(say('progress', { done: 3, total: 64, message: 'batch 3 of 64' })).toBe('3 of 64 done · batch 3 of 64');
  expect(say('counter', { name: 'tokens', delta: 713 })).toBe('tokens +713');
  expect(say('phase', { name: 'evaluate', status: 'completed' })).toBe('evaluate completed');
  expect(say('meta', { model: 'small', tokens: { prompt: 12 } })).toBe('model: small · tokens: {"prompt":12}');
  expect(say('run.cancel_requested', { reason: 'wrong dataset' })).toBe('cancel requested: wrong dataset');
  expect(say('run.succeeded', { output: { accuracy: 0.5 } })).toBe('output: {"accuracy":0.5}');
  expect(say('log', { level: 'info', message: '  indented', stream: 'stdout' })).toBe('  indented');
  expect(say('x.custom', { a: 1.23456, b: 'two' })).toBe('a: 1.235 · b: two');
});

test("a call's later events name it by its label, and a failure by its headline (a traceback's exception line)", () => {
  expect(say('call.started', { callId: 'c1', label: 'Evaluating doc_1 with gpt-4o' })).toBe('Evaluating doc_1 with gpt-4o');
  expect(say('call.succeeded', { callId: 'c1', durationMs: 2385 })).toBe('Evaluating doc_1 with gpt-4o succeeded in 2.4\u00a0s');
  expect(say('call.succeeded', { callId: 'c9' })).toBe('c9 succeeded');
  const traceback = 'Traceback (most recent call last):\n  File "eval.py", line 3, in score\nZeroDivisionError: division by zero';
  expect(say('call.failed', { callId: 'c1', error: traceback, willRetry: false })).toBe('Evaluating doc_1 with gpt-4o failed: ZeroDivisionError: division by zero');
  expect(say('call.failed', { callId: 'c1', error: '429 rate limited', willRetry: true })).toBe('Evaluating doc_1 with gpt-4o failed, will retry: 429 rate limited');
  expect(say('call.retried', { callId: 'c1', attempt: 2 })).toBe('Evaluating doc_1 with gpt-4o: attempt 2');
  expect(say('run.failed', { error: { kind: 'error', message: 'python3 x.py exited with code 1: ValueError: bad\n\nlast line of stderr:\nValueError: bad' } })).toBe(
    'error: python3 x.py exited with code 1: ValueError: bad',
  );
});

test('an artifact reads as its name, type and size, as the Artifacts panel shows it, not as its record', () => {
  const sha256 = 'f'.repeat(64);
  expect(say('artifact', { ordinal: 1, name: '01_input.txt', contentType: 'text/plain', size: 35, sha256, createdAt: 1 })).toBe('01_input.txt · text/plain · 35 bytes');
  expect(say('artifact', { ordinal: 3, name: 'render.png', contentType: 'image/png', size: 140_748, sha256, createdAt: 1, metadata: { seed: 7 } })).toBe(
    'render.png · image/png · 137.4 KiB · metadata: {"seed":7}',
  );
  expect(say('artifact', { name: 'report', uri: 'https://example.com/r.html' })).toBe('report · link https://example.com/r.html');
});
