import { useMemo, useSyncExternalStore } from 'react';
import { createRunsSource, useRuntrailConfig } from '@runtrail/client/react';
import type { Run } from '@runtrail/protocol';

const NONE: readonly Run[] = Object.freeze([]);
const idle = { subscribe: () => () => undefined, getSnapshot: () => null };

/**
 * A run's children (a task's experiments), live, oldest first; one
 * subscription shared by the panels that show them (table, timeline,
 * comparison chart). `enabled` false (a reader who may not list runs)
 * opens nothing.
 */
export function useChildRuns(parentId: string, enabled: boolean): readonly Run[] {
  const config = useRuntrailConfig();
  const source = useMemo(() => (enabled ? createRunsSource({ ...config, filter: { parentId } }) : idle), [config, parentId, enabled]);
  const state = useSyncExternalStore(source.subscribe, source.getSnapshot, () => null);
  const runs = state?.runs ?? NONE;
  return useMemo(() => [...runs].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id)), [runs]);
}
