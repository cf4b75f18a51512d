import type { Page } from 'playwright-core';

/**
 * What React rendered again on a page, seen through React DevTools' global
 * hook, which the production build calls on every commit: the tests of
 * what a clock tick or an event re-renders watch the real build this way.
 */
export interface RenderProbe {
  /** Elements whose re-renders are counted, by a name of the test's: a CSS selector, and the attribute that tells one from another. */
  elements: Record<string, { selector: string; key?: string }>;
  /** Texts whose changes are noted, by a name of the test's: a CSS selector (the texts of every match, together). */
  texts: Record<string, string>;
}

/** One commit that changed a watched text or rendered a watched element again. */
export interface Commit {
  /** The watched texts this commit changed (a text seen for the first time is no change). */
  changed: string[];
  /**
   * By element name, the key (its `key` attribute) of each such element
   * React rendered again in this commit: new props for an element it had
   * already drawn. An element drawn for the first time is not counted.
   */
  rendered: Record<string, string[]>;
}

export interface RenderWatch {
  /** The commits since the page opened, or since the last reset. */
  commits(): Promise<Commit[]>;
  reset(): Promise<void>;
}

interface Fiber {
  stateNode: unknown;
  memoizedProps: unknown;
  child: Fiber | null;
  sibling: Fiber | null;
}

/** Installs the hook for the next pages the page opens (call it before `goto`). */
export async function watchRenders(page: Page, probe: RenderProbe): Promise<RenderWatch> {
  await page.addInitScript((probe: RenderProbe) => {
    const commits: Commit[] = [];
    const props = new WeakMap<object, unknown>();
    const texts = new Map<string, string>();
    const textOf = (selector: string) => [...document.querySelectorAll(selector)].map((el) => el.textContent ?? '').join('\n');
    Object.assign(window, {
      __commits: commits,
      __REACT_DEVTOOLS_GLOBAL_HOOK__: {
        supportsFiber: true,
        inject: () => 1,
        checkDCE: () => undefined,
        onCommitFiberUnmount: () => undefined,
        onPostCommitFiberRoot: () => undefined,
        onCommitFiberRoot(_renderer: number, root: { current: Fiber }) {
          // Called once the commit is in the DOM.
          const commit: Commit = { changed: [], rendered: {} };
          for (const [name, selector] of Object.entries(probe.texts)) {
            const text = textOf(selector);
            if (texts.has(name) && texts.get(name) !== text) commit.changed.push(name);
            texts.set(name, text);
          }
          const stack: Fiber[] = [root.current];
          for (let f = stack.pop(); f; f = stack.pop()) {
            if (f.child) stack.push(f.child);
            if (f.sibling) stack.push(f.sibling);
            const el = f.stateNode;
            if (!(el instanceof HTMLElement)) continue;
            const again = props.has(el) && props.get(el) !== f.memoizedProps;
            props.set(el, f.memoizedProps);
            if (!again) continue;
            for (const [name, { selector, key }] of Object.entries(probe.elements)) {
              if (el.matches(selector)) (commit.rendered[name] ??= []).push(key ? (el.getAttribute(key) ?? '') : '');
            }
          }
          if (commit.changed.length > 0 || Object.keys(commit.rendered).length > 0) commits.push(commit);
        },
      },
    });
  }, probe);
  return {
    commits: () => page.evaluate(() => (window as unknown as { __commits: Commit[] }).__commits),
    reset: () => page.evaluate(() => void (window as unknown as { __commits: Commit[] }).__commits.splice(0)),
  };
}

/** The keys of the `name` elements rendered again in these commits. */
export function renderedIn(commits: readonly Commit[], name: string): string[] {
  return commits.flatMap((c) => c.rendered[name] ?? []);
}

/** How many of these commits changed the text `name`. */
export function changesOf(commits: readonly Commit[], name: string): number {
  return commits.filter((c) => c.changed.includes(name)).length;
}
