import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { pollEvery } from '@runtrail/client';
import { createRunsSource, useRuntrailConfig } from '@runtrail/client/react';
import type { Run } from '@runtrail/protocol';
import { client } from '../../client.js';

/** The children a run's page watches: the latest this many (one page of the API). */
export const CHILDREN_WATCHED = 100;
/** How often a parent with more children than it watches counts them again. */
const COUNT_POLL_MS = 5000;

const NONE: readonly Run[] = Object.freeze([]);

/**
 * A run's children (a task's experiments), live, oldest first; one
 * subscription shared by the panels that show them (table, timeline,
 * comparison chart). Every reader of the run may list them, a shared
 * link's run token too.
 */
export function useChildRuns(parentId: string): readonly Run[] {
  const config = useRuntrailConfig();
  const source = useMemo(() => createRunsSource({ ...config, filter: { parentId }, limit: CHILDREN_WATCHED }), [config, parentId]);
  const state = useSyncExternalStore(source.subscribe, source.getSnapshot, () => null);
  const runs = state?.runs ?? NONE;
  return useMemo(() => [...runs].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id)), [runs]);
}

/**
 * How many children the run has in all: the ones watched, or, when the
 * watch is full, the server's count (GET /run-counts), read again now and
 * then. The page watches the latest 100 children; a sweep of 300 read
 * "Child runs (100)".
 */
export function useChildCount(parentId: string, watched: number): number {
  const full = watched >= CHILDREN_WATCHED;
  const [counted, setCounted] = useState<{ parentId: string; total: number } | null>(null);
  useEffect(() => {
    if (!full) return;
    const stop = new AbortController();
    pollEvery(
      () => client.countRuns({ parentId }),
      { onValue: (counts) => setCounted({ parentId, total: counts.total }), onError: () => undefined },
      { intervalMs: COUNT_POLL_MS, signal: stop.signal },
    );
    return () => stop.abort();
  }, [parentId, full]);
  return Math.max(watched, full && counted?.parentId === parentId ? counted.total : 0);
}
