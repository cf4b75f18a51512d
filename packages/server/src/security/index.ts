export { BrowserGuard, SECURITY_HEADERS, type BrowserGuardOptions } from './browser-guard.js';
export { TokenService, invalidTokenMessage, type Principal, type Validity } from './tokens.js';
export { authorize, authorizeEvents, listedParents, routeAccess, type Access } from './access.js';
export { installAuth, redactUrl, tokenOf } from './authenticate.js';
export { registerTokenRoutes } from './token-routes.js';
export { ConnectionCounter, RateLimiter, checkEventData, countedAgainst, checkRunData, jsonBytes, rateLimited, tooLarge, type PayloadLimits } from './limits.js';
export { addressKey, clientAddress, clientKey, limitConnectionsPerAddress, plainAddress } from './client-address.js';
export { atLeastRate, limitRequestBodies } from './body-budget.js';
export { servePipelinedInTurn } from './pipelining.js';
