import { expect, it } from 'vitest';
import { dashboardRunPath, matchDashboardRunPath } from './routes.js';

it('reads the run id back from its dashboard path, whatever characters it has', () => {
  for (const id of ['01a22003-8dc8-7235-9aef-0608e89bc08d', 'a b/c?d#e', 'é💡']) {
    expect(matchDashboardRunPath(dashboardRunPath(id))).toBe(id);
  }
  expect(matchDashboardRunPath('/runs/abc/')).toBe('abc');
  for (const other of ['/', '/runs', '/runs/', '/runs/a/b', '/api/v1/runs/abc']) expect(matchDashboardRunPath(other)).toBeNull();
});

it('a run path whose escapes do not decode (a link cut short) is that id as written, not a URIError that takes the dashboard down', () => {
  expect(matchDashboardRunPath('/runs/%E0%A4%A')).toBe('%E0%A4%A');
  expect(matchDashboardRunPath('/runs/100%')).toBe('100%');
});
