import { describe, expect, it } from 'vitest';
import { linkPreviewAllowed } from './link-preview.js';

describe('which links linkPreviewHosts lets the dashboard preview', () => {
  const allowed = (url: string, origins: string[]) => linkPreviewAllowed(new URL(url), origins);

  it('matches scheme, host and port as a CSP host-source does, never more', () => {
    const origins = ['https://reports.example.com', 'http://127.0.0.1:9000', 'https://*.cdn.example.net', 'http://[::1]:8080'];
    expect(allowed('https://reports.example.com/a.png', origins)).toBe(true);
    expect(allowed('https://REPORTS.example.com:443/a.png', origins)).toBe(true);
    expect(allowed('http://127.0.0.1:9000/x', origins)).toBe(true);
    expect(allowed('https://eu.cdn.example.net/x', origins)).toBe(true);
    expect(allowed('https://a.b.cdn.example.net/x', origins)).toBe(true);
    expect(allowed('http://[::1]:8080/x', origins)).toBe(true);
    for (const url of [
      'http://reports.example.com/a.png',
      'https://reports.example.com:8443/a.png',
      'https://evil-reports.example.com/a.png',
      'https://reports.example.com.evil.test/a.png',
      'http://127.0.0.1:9001/x',
      'http://127.0.0.1/x',
      'https://cdn.example.net/x',
      'https://evilcdn.example.net/x',
      'http://[::1]:8081/x',
    ]) {
      expect(allowed(url, origins), url).toBe(false);
    }
    expect(allowed('https://reports.example.com/a.png', [])).toBe(false);
  });
});
