import { config } from 'zod';

/**
 * zod compiles object parsers with `new Function` when it may, and probes
 * whether it may by calling `Function('')` once. The dashboard's CSP
 * allows no eval and requires Trusted Types, so the probe is refused and
 * reported as a policy violation (a console error under Trusted Types) on
 * every page. Parsing without the compiled fast path is what the probe
 * would have fallen back to anyway; saying so up front skips the probe.
 */
config({ jitless: true });
