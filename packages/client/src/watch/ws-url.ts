/**
 * The WebSocket URL for an HTTP URL built from the route table. A relative
 * base URL ('' = this page's origin) is resolved against the page, since
 * older browsers reject relative WebSocket URLs.
 */
export function toWebSocketUrl(httpUrl: string, token?: string): string {
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const url = page ? new URL(httpUrl, page) : new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  // A browser WebSocket cannot send an Authorization header; the server takes ?token= here and keeps it out of its logs.
  if (token) url.searchParams.set('token', token);
  return url.toString();
}
