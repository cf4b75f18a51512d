import { describe, expect, it } from 'vitest';
import { linkPreviewAllowed } from './link-preview.js';

describe('which links linkPreviewHosts lets the dashboard preview', () => {
  const allowed = (url: string, origins: string[]) => linkPreviewAllowed(new URL(url), origins);

  it('matches scheme, host and port as a CSP host-source does, never more', () => {
    const origins = ['https://reports.example.com', 'http://127.0.0.1:9000', 'https://*.cdn.example.net'];
    expect(allowed('https://reports.example.com/a.png', origins)).toBe(true);
    expect(allowed('https://REPORTS.example.com:443/a.png', origins)).toBe(true);
    expect(allowed('http://127.0.0.1:9000/x', origins)).toBe(true);
    expect(allowed('https://eu.cdn.example.net/x', origins)).toBe(true);
    expect(allowed('https://a.b.cdn.example.net/x', origins)).toBe(true);
    for (const url of [
      'http://reports.example.com/a.png',
      'https://reports.example.com:8443/a.png',
      'https://evil-reports.example.com/a.png',
      'https://reports.example.com.evil.test/a.png',
      'http://127.0.0.1:9001/x',
      'http://127.0.0.1/x',
      'https://cdn.example.net/x',
      'https://evilcdn.example.net/x',
    ]) {
      expect(allowed(url, origins), url).toBe(false);
    }
    expect(allowed('https://reports.example.com/a.png', [])).toBe(false);
  });

  it('offers no preview the browser would not load from an allowed origin: userinfo, other schemes, look-alike hosts', () => {
    const origins = ['https://reports.example.com', 'https://*.cdn.example.net'];
    // The host after the userinfo is whom the browser asks.
    expect(allowed('https://reports.example.com@evil.test/a.png', origins)).toBe(false);
    // An allowed host with a user or password: browsers refuse to load it. Before, a button was offered that could only fail.
    expect(allowed('https://user@reports.example.com/a.png', origins)).toBe(false);
    expect(allowed('https://user:secret@eu.cdn.example.net/a.png', origins)).toBe(false);
    for (const url of [
      'javascript:alert(1)//https://reports.example.com',
      'data:image/png;base64,AAAA',
      'https://reports.example.com./a.png',
      'https://xn--rports-9ua.example.com/a.png',
      'https://reports.example.com%2eevil.test/a.png',
      'https://cdn.example.net.evil.test/a.png',
      'https://[::1]/a.png',
      'https://reports.example.com:0/a.png',
    ]) {
      expect(allowed(url, origins), url).toBe(false);
    }
    // An IPv6 origin is no CSP source (browsers ignore it): its links get no preview. Before, they were offered one the policy refused.
    expect(allowed('http://[::1]:8080/x', ['http://[::1]:8080'])).toBe(false);
    // What the browser itself normalises to an allowed origin is one.
    expect(allowed('HTTPS://REPORTS.EXAMPLE.COM:443/a.png', origins)).toBe(true);
    expect(allowed('https://r%65ports.example.com/a.png', origins)).toBe(true);
  });
});
