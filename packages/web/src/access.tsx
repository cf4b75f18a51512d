import { createContext, useContext, type ReactNode } from 'react';
import type { PrincipalInfo, TokenScope } from '@runtrail/protocol';

/** What the page's token may do, so the UI offers only what will work. */
export interface Access {
  /** Auth is on (a token is needed at all). */
  auth: boolean;
  principal: PrincipalInfo;
  /** Start, cancel, retry runs. */
  canProduce: boolean;
  /** Delete runs. */
  canAdmin: boolean;
  /** See the runs list (a run token sees one run only). */
  canList: boolean;
}

const RANK: Record<TokenScope, number> = { viewer: 0, producer: 1, admin: 2 };

export function accessOf(auth: boolean, principal: PrincipalInfo): Access {
  const rank = principal.kind === 'open' ? 2 : principal.kind === 'scoped' ? RANK[principal.scope] : -1;
  return { auth, principal, canProduce: rank >= 1, canAdmin: rank >= 2, canList: rank >= 0 };
}

const AccessContext = createContext<Access>(accessOf(false, { kind: 'open' }));

export function AccessProvider({ access, children }: { access: Access; children?: ReactNode }) {
  return <AccessContext.Provider value={access}>{children}</AccessContext.Provider>;
}

export function useAccess(): Access {
  return useContext(AccessContext);
}

/** What a run token is, in the page's words: a shared link reads; a subprocess's token also adds to its run. */
export function runLinkText(write: boolean): string {
  return write ? 'link to one run that may add events and artifacts to it' : 'read-only link to one run';
}

/** Why a control is not offered, in the words the page shows. */
export function cannotText(access: Access, needs: 'producer' | 'admin'): string {
  const p = access.principal;
  const what = p.kind === 'run' ? `a ${runLinkText(p.write)}` : p.kind === 'scoped' ? `a ${p.scope} token` : 'this token';
  return `Your token cannot do this: it is ${what}; this needs a ${needs} token.`;
}
