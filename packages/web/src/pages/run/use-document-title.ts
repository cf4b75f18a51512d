import { useEffect } from 'react';

/** The browser tab says which run it is and how it is doing, and gives the title back on leaving. */
export function useDocumentTitle(title: string): void {
  useEffect(() => {
    const before = document.title;
    document.title = title;
    return () => {
      document.title = before;
    };
  }, [title]);
}
