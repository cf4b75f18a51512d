export { ArtifactService, type ArtifactLimits, type PutArtifactOptions, type PutOutcome } from './artifact-service.js';
export { registerArtifactRoutes } from './artifact-routes.js';
