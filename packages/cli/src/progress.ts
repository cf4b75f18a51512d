import { REDRAW_MS } from './transfer.js';

/**
 * How far a command got, counted in things ("runtrail: migrating: 120 of
 * 3400 run(s)"): a line on stderr redrawn in place on a terminal, or a line
 * per redraw with --progress when stderr is not one. `show` is --progress /
 * --no-progress; unset, the line shows on a terminal only.
 */
export class CountProgress {
  done = 0;
  total: number | null = null;
  private detail: string | undefined;
  private drawn = false;
  private lastDraw = Date.now();
  private readonly tty = process.stderr.isTTY === true;
  private readonly show: boolean;

  constructor(
    private readonly doing: string,
    private readonly unit: string,
    show: boolean | undefined,
  ) {
    this.show = show ?? this.tty;
  }

  /** `detail`, when given, follows the count ("…: 0 of 1 run(s), 120000 event(s)"): what moves while the count cannot. */
  update = (done: number, total: number, detail?: string): void => {
    this.done = done;
    this.total = total;
    this.detail = detail;
    if (this.show && (done === total || Date.now() - this.lastDraw >= REDRAW_MS)) this.draw();
  };

  /** Ends the line on a terminal, so what follows starts on a line of its own. */
  end(): void {
    if (this.drawn && this.tty) process.stderr.write('\n');
    this.drawn = false;
  }

  private draw(): void {
    this.lastDraw = Date.now();
    this.drawn = true;
    const line = `runtrail: ${this.doing}: ${this.done} of ${this.total} ${this.unit}${this.detail ? `, ${this.detail}` : ''}`;
    process.stderr.write(this.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}
