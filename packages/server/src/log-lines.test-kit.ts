import { Writable } from 'node:stream';

/** A log destination for startServer({ logFormat: 'json', logDestination }) that keeps each line, parsed, in `lines`. */
export function jsonLogLines(lines: Array<Record<string, unknown>> = []): { lines: Array<Record<string, unknown>>; destination: Writable } {
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}
