/** A native <progress> keeps the role and value readable by assistive tech. */
export function ProgressBar({ percent, label }: { percent: number | null; label: string }) {
  if (percent === null) {
    return <progress className="progress" aria-label={label} />;
  }
  const value = Math.round(percent * 10) / 10;
  return (
    <span className="progress-wrap">
      <progress className="progress" aria-label={label} max={100} value={value} />
      <span className="progress-text">{Math.floor(value)}%</span>
    </span>
  );
}
