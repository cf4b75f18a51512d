import { useEffect, useState } from 'react';
import type { ArtifactRecord } from '@runtrail/protocol';
import { messageOf } from '../client.js';
import { formatNumber } from '../format.js';

/** Text previews stop here: a preview is a glance, not a download. */
const MAX_PREVIEW_CHARS = 64 * 1024;

type Kind = 'image' | 'json' | 'text' | null;

function kindOf(a: ArtifactRecord): Kind {
  const type = (a.contentType ?? '').toLowerCase();
  if (type.startsWith('image/')) return 'image';
  if (type === 'application/json' || type.endsWith('+json') || a.name.endsWith('.json')) return 'json';
  if (type.startsWith('text/') || /\.(txt|log|csv|md)$/.test(a.name)) return 'text';
  return null;
}

/**
 * Producers choose artifact URIs, so the page only follows ones that cannot
 * run script: http(s) and same-origin paths as links, and data: URIs only
 * for previews (never as a link target).
 */
function resolveUri(uri: string | null): { href: string | null; preview: string | null } {
  if (!uri) return { href: null, preview: null };
  let url: URL;
  try {
    url = new URL(uri, window.location.origin);
  } catch {
    // Not a URL at all: show the name without a link rather than fail the page.
    return { href: null, preview: null };
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') return { href: url.href, preview: url.href };
  if (url.protocol === 'data:') return { href: null, preview: url.href };
  return { href: null, preview: null };
}

export function Artifacts({ artifacts }: { artifacts: ArtifactRecord[] }) {
  if (artifacts.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts ({artifacts.length})</h2>
      <ul className="artifacts">
        {artifacts.map((a) => (
          <ArtifactItem key={a.seq} artifact={a} />
        ))}
      </ul>
    </section>
  );
}

function ArtifactItem({ artifact: a }: { artifact: ArtifactRecord }) {
  const [open, setOpen] = useState(false);
  const { href, preview } = resolveUri(a.uri);
  const kind = kindOf(a);
  return (
    <li>
      <div className="artifact-row">
        {href ? (
          <a href={href} target="_blank" rel="noreferrer">
            {a.name}
          </a>
        ) : (
          <span>{a.name}</span>
        )}
        {a.contentType && <span className="muted">{a.contentType}</span>}
        {a.size !== null && <span className="muted">{formatNumber(a.size)} bytes</span>}
        {preview && kind && (
          <button type="button" className="small" aria-expanded={open} aria-label={`preview ${a.name}`} onClick={() => setOpen((o) => !o)}>
            {open ? 'Hide' : 'Preview'}
          </button>
        )}
      </div>
      {open && preview && kind && <Preview uri={preview} kind={kind} name={a.name} />}
    </li>
  );
}

function Preview({ uri, kind, name }: { uri: string; kind: Exclude<Kind, null>; name: string }) {
  if (kind === 'image') return <img className="artifact-image" src={uri} alt={name} />;
  return <TextPreview uri={uri} json={kind === 'json'} name={name} />;
}

function TextPreview({ uri, json, name }: { uri: string; json: boolean; name: string }) {
  const [state, setState] = useState<{ text: string | null; error: string | null }>({ text: null, error: null });
  useEffect(() => {
    const aborter = new AbortController();
    setState({ text: null, error: null });
    fetch(uri, { signal: aborter.signal })
      .then(async (res) => {
        if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
        const body = await res.text();
        const clipped =
          body.length > MAX_PREVIEW_CHARS
            ? `${body.slice(0, MAX_PREVIEW_CHARS)}\n… (${formatNumber(body.length)} characters in all)`
            : body;
        setState({ text: json ? prettyJson(clipped) : clipped, error: null });
      })
      .catch((err: unknown) => {
        if (!aborter.signal.aborted) setState({ text: null, error: messageOf(err) });
      });
    return () => aborter.abort();
  }, [uri, json]);
  if (state.error) return <p className="invalid">Could not load the preview: {state.error}</p>;
  if (state.text === null) return <p className="muted">Loading…</p>;
  return (
    <pre className="artifact-text" aria-label={`contents of ${name}`}>
      {state.text}
    </pre>
  );
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // Clipped or not JSON after all: the raw text is still worth showing.
    return text;
  }
}
