/**
 * `@runtrail/server/config`: what a command line needs before (or instead
 * of) starting a server: the settings table, resolving and describing a
 * configuration, and the error a start refuses with. It loads no HTTP
 * server, store or driver, so a client command that only parses its flags
 * starts in a fraction of the time the whole server package takes to load.
 */
export {
  loadConfig,
  resolveConfig,
  describeConfig,
  settings,
  configKeys,
  ServerConfig,
  CONFIG_FILE_NAME,
  type ServerConfigInput,
  type ConfigKey,
  type ConfigSources,
  type ResolvedConfig,
  type Setting,
} from './config.js';
export { StartupError } from './startup-error.js';
