// Zod without its eval probe: imported first by the app's entry (main.tsx) and the engine's (boot.ts), before any
// schema is built (the wire contract, @weconnect/relay/protocol, builds its schemas when it is loaded).
// Building an object schema makes zod try `new Function('')` to see whether it may compile parsers; under the relay's
// CSP (no 'unsafe-eval') that attempt fails as intended, but the browser still reports it as a CSP violation, which
// would hide real ones. Jitless mode skips the probe; under this CSP the compiled parsers were never available anyway.
import { z } from 'zod';

z.config({ jitless: true });
