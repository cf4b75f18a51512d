/**
 * `@runtrail/server/config`: what a command line needs before (or instead
 * of) starting a server: the settings table, resolving and describing a
 * configuration, and the error a start refuses with. It loads no HTTP
 * server, store or driver, so a client command that only parses its flags
 * starts in a fraction of the time the whole server package takes to load.
 */
export { configKeys, describeConfig, resolveConfig, settings, type ConfigSources, type ServerConfigInput } from './config.js';
export { StartupError } from './startup-error.js';
