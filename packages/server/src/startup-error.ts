/** The server will not start as configured; the message says why in one line. */
export class StartupError extends Error {
  override name = 'StartupError';
}
