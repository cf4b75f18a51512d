import { formatFullTime, formatTime } from '../format.js';

/**
 * A moment as the page shows it (its time of day, with the date unless it
 * is today), marked up as a `<time>` whose tooltip gives it in full with
 * its date and time zone; no moment is "–".
 */
export function When({ ts }: { ts: number | null }) {
  if (ts === null) return <>–</>;
  return (
    <time dateTime={new Date(ts).toISOString()} title={formatFullTime(ts)}>
      {formatTime(ts)}
    </time>
  );
}
