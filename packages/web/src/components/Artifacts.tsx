import { memo, useEffect, useState } from 'react';
import { buildPath, linkPreviewAllowed, type ArtifactRecord } from '@runtrail/protocol';
import { client, serverUrl, token } from '../client.js';
import { TRY_AGAIN, problemText } from '../problem-text.js';
import { formatSize } from '../format.js';
import { parseCsv } from './csv.js';
import { fileNameOf, followDownloadLink, saveResponse } from './download.js';
import { useLinkPreviewHosts, type LinkPreviewHosts } from './link-preview-hosts.js';
import { Markdown } from './markdown.js';
import { mediaUrl } from './media-url.js';
import { terminalText } from '../pages/run/terminal-line.js';
import { visibleName, visibleText } from '../visible-text.js';
import './artifacts.css';

/** Text previews read at most this much (a range request): a preview is a glance, not a download. */
const MAX_PREVIEW_BYTES = 256 * 1024;
/** Images, audio and video up to this size play in the page; larger ones are a download. */
const MAX_MEDIA_BYTES = 16 * 1024 * 1024;
/** Rows of a CSV table shown. */
const MAX_CSV_ROWS = 200;
/** Stored artifacts whose preview opens by itself; later ones open on request. */
const OPEN_PREVIEWS = 12;

type Kind = 'image' | 'audio' | 'video' | 'json' | 'markdown' | 'csv' | 'text';

function kindOf(a: ArtifactRecord): Kind | null {
  const type = (a.contentType ?? '').toLowerCase().split(';')[0]!.trim();
  const ext = /\.([a-z0-9]+)$/i.exec(a.name)?.[1]?.toLowerCase() ?? '';
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('audio/')) return 'audio';
  if (type.startsWith('video/')) return 'video';
  if (type === 'application/json' || type.endsWith('+json') || ext === 'json') return 'json';
  if (type === 'text/markdown' || ext === 'md' || ext === 'markdown') return 'markdown';
  if (type === 'text/csv' || ext === 'csv') return 'csv';
  if (type.startsWith('text/') || ext === 'txt' || ext === 'log') return 'text';
  return null;
}

/**
 * Producers choose artifact URIs, so the page only follows ones that cannot
 * run script: http(s) and same-origin paths as links, and data: URIs only
 * for previews (never as a link target). `host` is whom a preview of an
 * http(s) URI contacts (null for data:, which contacts no one).
 */
function resolveUri(uri: string | null): { href: string | null; preview: string | null; host: string | null } {
  const none = { href: null, preview: null, host: null };
  if (!uri) return none;
  let url: URL;
  try {
    url = new URL(uri, window.location.origin);
  } catch {
    // Not a URL at all: show the name without a link rather than fail the page.
    return none;
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') return { href: url.href, preview: url.href, host: url.host };
  if (url.protocol === 'data:') return { href: null, preview: url.href, host: null };
  return none;
}

/**
 * The run's artifacts, live (each `artifact` event adds one): stored ones
 * with a preview of their content (text, JSON pretty-printed, Markdown
 * rendered safely, CSV as a table, images, audio and video) and a download;
 * links to content kept elsewhere with a preview of what they point to.
 *
 * A link's preview loads only when the viewer asks, from a button naming
 * the host it contacts: a producer chooses the URI, and a preview that
 * opened by itself would make every viewer's browser request a URL of the
 * producer's choosing the moment the page opens (a tracking pixel, a
 * request into the viewer's own network). The dashboard's CSP cannot tell
 * such a load from one the viewer asked for, so this is the only line
 * against that. What the CSP does is limit the hosts to the server's
 * linkPreviewHosts: a link to any other says so instead of offering a
 * button whose load the policy would refuse.
 */
export const Artifacts = memo(function Artifacts({ runId, artifacts }: { runId: string; artifacts: ArtifactRecord[] }) {
  if (artifacts.length === 0) return null;
  let stored = 0;
  return (
    <section className="panel" aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts ({artifacts.length})</h2>
      <ul className="artifacts">
        {artifacts.map((a) => {
          const isStored = a.uri === null && a.sha256 !== null;
          // Only content this server stores opens by itself: a link's preview waits for the viewer (see above).
          const openAtFirst = isStored && stored++ < OPEN_PREVIEWS;
          return <ArtifactItem key={a.seq} runId={runId} artifact={a} stored={isStored} openAtFirst={openAtFirst} />;
        })}
      </ul>
    </section>
  );
});

function ArtifactItem({ runId, artifact: a, stored, openAtFirst }: { runId: string; artifact: ArtifactRecord; stored: boolean; openAtFirst: boolean }) {
  const kind = kindOf(a);
  const { href, preview, host } = resolveUri(a.uri);
  const source: Source | null = stored ? { runId, name: a.name } : preview ? { uri: preview } : null;
  const tooBig = a.size !== null && a.size > MAX_MEDIA_BYTES && (kind === 'image' || kind === 'audio' || kind === 'video');
  const previewHosts = useLinkPreviewHosts();
  const hostAllowed = preview === null || host === null ? true : previewHosts === null ? null : linkHostAllowed(preview, previewHosts);
  // A preview the CSP would refuse is not offered: why not is said instead (below).
  const canPreview = source !== null && kind !== null && !tooBig && hostAllowed === true;
  const refusedHost = !stored && source !== null && kind !== null && !tooBig && hostAllowed === false;
  const [open, setOpen] = useState(openAtFirst && canPreview);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const download = async () => {
    setDownloadError(null);
    if (token === undefined) {
      // Nothing to add to the request: the browser downloads it itself, streamed to disk with its own
      // progress, rather than the page holding a checkpoint of gigabytes in memory first.
      followDownloadLink(serverUrl + buildPath('getArtifact', { id: runId, name: a.name }), a.name);
      return;
    }
    try {
      const res = await client.fetchArtifact(runId, a.name);
      await saveResponse(res, fileNameOf(res, a.name));
    } catch (err) {
      setDownloadError(problemText(err, 'download failed', TRY_AGAIN));
    }
  };
  return (
    <li data-testid={`artifact-${a.name}`}>
      <div className="artifact-row">
        {a.ordinal !== null && <span className="muted">{String(a.ordinal).padStart(2, '0')}</span>}
        {href ? (
          <a href={href} target="_blank" rel="noreferrer" className="artifact-name">
            {visibleName(a.name)}
          </a>
        ) : (
          <span className="artifact-name">{visibleName(a.name)}</span>
        )}
        {/* The media type without its parameters ("; charset=utf-8"): those are in the tooltip. */}
        {a.contentType && (
          <span className="muted" title={visibleText(a.contentType)}>
            {visibleText(a.contentType.split(';')[0]!)}
          </span>
        )}
        {a.size !== null && <span className="muted">{formatSize(a.size)}</span>}
        {canPreview && (
          <button
            type="button"
            className="small"
            aria-expanded={open}
            aria-label={open ? `hide ${a.name}` : host === null ? `preview ${a.name}` : `load from ${host}: ${a.name}`}
            title={!open && host !== null ? `Fetches ${preview}: ${host} learns your address and when you looked` : undefined}
            onClick={() => setOpen((o) => !o)}
          >
            {/* URL.host is ASCII (an IDN in punycode): the name a look-alike host cannot fake. */}
            {open ? 'Hide' : host === null ? 'Preview' : `Load from ${host}`}
          </button>
        )}
        {refusedHost && previewHosts !== null && 'error' in previewHosts && <span className="muted">{previewHosts.error}</span>}
        {refusedHost && previewHosts !== null && 'hosts' in previewHosts && (
          <span className="muted">Preview not allowed for host {host} (the server&apos;s linkPreviewHosts setting)</span>
        )}
        {stored && (
          <button type="button" className="small" aria-label={`download ${a.name}`} onClick={() => void download()}>
            Download
          </button>
        )}
      </div>
      {downloadError && <p className="invalid">{downloadError}</p>}
      {stored && kind !== null && tooBig && <p className="muted">Too large to preview here ({formatSize(a.size!)}); download it.</p>}
      {open && canPreview && <Preview source={source} kind={kind} artifact={a} />}
    </li>
  );
}

/**
 * Whether the dashboard's CSP lets the page load `uri`: its own origin
 * ('self') or one of the server's linkPreviewHosts. False when the server
 * could not be asked which those are: a button then would be a guess.
 */
function linkHostAllowed(uri: string, hosts: LinkPreviewHosts): boolean {
  const url = new URL(uri);
  if (url.origin === window.location.origin) return true;
  return 'hosts' in hosts && linkPreviewAllowed(url, hosts.hosts);
}

type Source = { runId: string; name: string } | { uri: string };

/** The artifact's bytes (for text, the first MAX_PREVIEW_BYTES: a range request), through the API with the tab's token, or from its link. */
async function fetchContent(source: Source, text: boolean, signal: AbortSignal): Promise<Response> {
  if ('uri' in source) {
    const res = await fetch(source.uri, { signal });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    return res;
  }
  return client.fetchArtifact(source.runId, source.name, { signal, ...(text ? { range: `bytes=0-${MAX_PREVIEW_BYTES - 1}` } : {}) });
}

type Loaded = { text: string; clipped: boolean } | { url: string };

function useContent(runId: string | null, name: string, uri: string | null, kind: Kind, size: number | null) {
  const media = kind === 'image' || kind === 'audio' || kind === 'video';
  const [state, setState] = useState<{ loaded: Loaded | null; error: string | null }>({ loaded: null, error: null });
  useEffect(() => {
    if (media && uri !== null) {
      // A link (http(s) or data:) plays from where it is.
      setState({ loaded: { url: uri }, error: null });
      return;
    }
    const source: Source = uri !== null ? { uri } : { runId: runId!, name };
    const aborter = new AbortController();
    let objectUrl: string | null = null;
    setState({ loaded: null, error: null });
    fetchContent(source, !media, aborter.signal)
      .then(async (res) => {
        if (media) {
          const { url, revoke } = await mediaUrl(await res.blob());
          if (aborter.signal.aborted) {
            // Closed while it was read: the cleanup below has run already.
            if (revoke) URL.revokeObjectURL(url);
            return;
          }
          if (revoke) objectUrl = url;
          setState({ loaded: { url }, error: null });
          return;
        }
        const bytes = new Uint8Array(await res.arrayBuffer());
        const clipped = bytes.length > MAX_PREVIEW_BYTES || (size !== null && size > bytes.length);
        const text = new TextDecoder().decode(bytes.subarray(0, MAX_PREVIEW_BYTES));
        setState({ loaded: { text, clipped }, error: null });
      })
      .catch((err: unknown) => {
        if (!aborter.signal.aborted) setState({ loaded: null, error: problemText(err, 'could not load the preview', TRY_AGAIN) });
      });
    return () => {
      aborter.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [runId, name, uri, media, size]);
  return state;
}

function Preview({ source, kind, artifact: a }: { source: Source; kind: Kind; artifact: ArtifactRecord }) {
  const { loaded, error } = useContent('uri' in source ? null : source.runId, a.name, 'uri' in source ? source.uri : null, kind, a.size);
  if (error) return <p className="invalid">{error}</p>;
  if (!loaded) return <p className="muted">Loading…</p>;
  const label = `contents of ${visibleName(a.name)}`;
  if ('url' in loaded) {
    if (kind === 'image') return <img className="artifact-image" src={loaded.url} alt={visibleName(a.name)} />;
    if (kind === 'audio') return <audio className="artifact-media" controls src={loaded.url} aria-label={label} />;
    return <video className="artifact-media" controls src={loaded.url} aria-label={label} />;
  }
  const note = loaded.clipped ? (
    <p className="muted clip-note">
      Showing the first {formatSize(MAX_PREVIEW_BYTES)}
      {a.size !== null ? ` of ${formatSize(a.size)}` : ''}; download it for the rest.
    </p>
  ) : null;
  if (kind === 'markdown') {
    return (
      <div className="artifact-text artifact-markdown" aria-label={label} role="document">
        <Markdown text={loaded.text} />
        {note}
      </div>
    );
  }
  if (kind === 'csv') {
    const { rows, more } = parseCsv(loaded.text, MAX_CSV_ROWS, loaded.clipped);
    const [head, ...body] = rows;
    return (
      <div className="artifact-table-wrap">
        <table className="artifact-table" aria-label={label}>
          {head && (
            <thead>
              <tr>
                {head.map((cell, i) => (
                  <th key={i}>{visibleText(cell)}</th>
                ))}
              </tr>
            </thead>
          )}
          <tbody>
            {body.map((row, r) => (
              <tr key={r}>
                {row.map((cell, i) => (
                  <td key={i}>{visibleText(cell)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        {more && <p className="muted clip-note">The first {body.length} rows are shown; download it for the rest.</p>}
      </div>
    );
  }
  return (
    <>
      <pre className="artifact-text" aria-label={label}>
        {visibleText(kind === 'json' && !loaded.clipped ? prettyJson(loaded.text) : kind === 'text' && !isHtml(a) ? terminalText(loaded.text) : loaded.text)}
      </pre>
      {isHtml(a) && <p className="muted clip-note">A page a run stored is shown as its source: it never runs in the dashboard. Download it to open it.</p>}
      {note}
    </>
  );
}

function isHtml(a: ArtifactRecord): boolean {
  return /^(text\/html|application\/xhtml\+xml)\b/i.test(a.contentType ?? '');
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // Not JSON after all: the raw text is still worth showing.
    return text;
  }
}
