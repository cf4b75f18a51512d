import { useEffect, useState } from 'react';
import { client } from '../client.js';
import { problemText } from '../problem-text.js';

export type LinkPreviewHosts = { hosts: readonly string[] } | { error: string };

/**
 * Asked once per page load and shared by every artifact: the setting
 * changes only when the server restarts, and a reload asks again. A failed
 * answer is forgotten, so the next artifact to render asks again rather
 * than the page offering no preview until a reload.
 */
let asked: Promise<LinkPreviewHosts> | null = null;

function ask(): Promise<LinkPreviewHosts> {
  asked ??= client.dashboardConfig().then(
    (config) => ({ hosts: config.linkPreviewHosts }),
    (err: unknown) => {
      asked = null;
      return { error: problemText(err, "could not read the server's linkPreviewHosts setting", 'reload the page to try again.') };
    },
  );
  return asked;
}

/** The origins whose linked artifacts may be previewed here (the server's linkPreviewHosts); null until the server has said. */
export function useLinkPreviewHosts(): LinkPreviewHosts | null {
  const [state, setState] = useState<LinkPreviewHosts | null>(null);
  useEffect(() => {
    let mounted = true;
    void ask().then((answer) => {
      if (mounted) setState(answer);
    });
    return () => {
      mounted = false;
    };
  }, []);
  return state;
}
