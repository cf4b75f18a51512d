import { z } from 'zod';

/**
 * The origins whose linked artifacts (an artifact recorded as a `uri` on
 * another host) the dashboard may preview in the page: the server's
 * `linkPreviewHosts` setting. The server writes them into its
 * Content-Security-Policy; the dashboard reads them (routes.dashboardConfig)
 * so that a link to any other host says why it has no preview instead of
 * offering a button the policy would make fail. One parser and one matcher
 * here, so the two can never disagree on what a pattern means.
 */
export const DashboardConfigSchema = z.object({
  linkPreviewHosts: z
    .array(z.string())
    .describe("origins (scheme://host[:port], `*.` for any subdomain) whose linked artifacts the dashboard may preview: the server's linkPreviewHosts setting"),
});
export type DashboardConfig = z.infer<typeof DashboardConfigSchema>;

export const LINK_PREVIEW_ORIGIN_FORM = 'an origin http(s)://host[:port], or http(s)://*.domain.tld for any subdomain, with no path, user or query';

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' };
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

interface Pattern {
  scheme: 'http' | 'https';
  /** `*.` given: any name under `host`, not `host` itself (as a CSP host-source means it). */
  wildcard: boolean;
  /** Lower case: a host name or an IPv4 address (no IPv6 literal: see parseLinkPreviewOrigin). */
  host: string;
  /** '' for the scheme's default port, as URL.port spells it. */
  port: string;
}

/**
 * One entry of linkPreviewHosts, in its canonical spelling (lower case, no
 * default port, no trailing slash), or why it is none. Strict because it is
 * written into a response header: nothing but an origin may get there (a
 * `;` or a space would add a directive or a source of its own), and a
 * pattern the dashboard's matcher read differently from the browser's CSP
 * would offer a preview that fails, or hide one that works.
 */
export function parseLinkPreviewOrigin(text: string): { origin: string } | { error: string } {
  const bad = (why: string) => ({ error: `${JSON.stringify(text)} is not ${LINK_PREVIEW_ORIGIN_FORM}: ${why}` });
  const match = /^(https?):\/\/(\*\.)?(\[[0-9a-f:.]+\]|[^/:?#@\s[\]]+)(?::(\d{1,5}))?\/?$/.exec(text.trim().toLowerCase());
  if (!match) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text.trim()) && !/^https?:\/\//i.test(text.trim())) return bad('the scheme must be http or https');
    return bad('write scheme://host[:port] and nothing more');
  }
  const scheme = match[1] as Pattern['scheme'];
  const star = match[2] !== undefined;
  const host = match[3]!;
  const port = match[4] ?? '';
  if (port !== '' && (Number(port) < 1 || Number(port) > 65535)) return bad('the port must be from 1 to 65535');
  // A CSP host-source is letters, digits and dashes between dots: browsers ignore one naming an IPv6
  // literal (Chromium: "contains an invalid source … It will be ignored"), so the dashboard would
  // offer previews its policy then refuses.
  if (host.startsWith('[')) return bad('a Content-Security-Policy cannot name an IPv6 address (browsers ignore the source); give the host a name or an IPv4 address');
  const isIp = IPV4.test(host);
  if (!isIp) {
    const labels = host.split('.');
    if (/[^\x20-\x7e]/.test(host)) return bad('write an internationalised name in its ASCII form (xn--…), as browsers compare it');
    if (!labels.every((label) => LABEL.test(label))) return bad(`${host} is not a host name (letters, digits and -, between dots)`);
    if (/^\d+$/.test(labels[labels.length - 1]!)) return bad(`${host} is neither a host name nor an IPv4 address`);
    if (star && labels.length < 2) return bad(`*.${host} would allow every name under a top-level domain; name the domain (*.example.com)`);
  }
  if (star && isIp) return bad('a wildcard applies to host names, not addresses');
  const canonicalPort = port === '' || Number(port) === Number(DEFAULT_PORTS[scheme]) ? '' : String(Number(port));
  return { origin: `${scheme}://${star ? '*.' : ''}${host}${canonicalPort ? `:${canonicalPort}` : ''}` };
}

function toPattern(origin: string): Pattern | null {
  const parsed = parseLinkPreviewOrigin(origin);
  if ('error' in parsed) return null;
  const match = /^(https?):\/\/(\*\.)?(.+?)(?::(\d+))?$/.exec(parsed.origin)!;
  return { scheme: match[1] as Pattern['scheme'], wildcard: match[2] !== undefined, host: match[3]!, port: match[4] ?? '' };
}

/**
 * Whether a link to `url` may be previewed under `origins`: what the CSP
 * host-sources the server makes of them let a browser load. Stricter than
 * CSP in one way only, never looser: `http://h` does not also allow
 * `https://h` here (a browser would upgrade it), so at worst a preview is
 * offered a little less often than the policy would allow.
 */
export function linkPreviewAllowed(url: URL, origins: readonly string[]): boolean {
  // A user or password in the link (`https://user@allowed.example/`): browsers refuse to load it
  // (fetch throws, Chromium blocks such subresources), so a button for it would only fail.
  if (url.username !== '' || url.password !== '') return false;
  const scheme = url.protocol.replace(/:$/, '');
  const host = url.hostname.toLowerCase();
  return origins.some((origin) => {
    const p = toPattern(origin);
    if (p === null || p.scheme !== scheme || p.port !== url.port) return false;
    return p.wildcard ? host.endsWith(`.${p.host}`) : host === p.host;
  });
}
