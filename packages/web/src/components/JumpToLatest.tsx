/**
 * A live box's way back to its newest content once the reader scrolled away
 * from it: over the box's lower corner (its parent is `.follow-box`), shown
 * only while the box does not follow. Its name starts with the words it
 * shows, then says which box it is for (a run page has three).
 */
export function JumpToLatest({ what, onJump }: { what: string; onJump(): void }) {
  return (
    <button type="button" className="small jump-latest" aria-label={`Jump to latest ${what}`} onClick={onJump}>
      ↓ Jump to latest
    </button>
  );
}
