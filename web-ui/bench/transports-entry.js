// The page side of bench/watch-transports.mjs: both watch transports, as the app builds them.
import { fetchTransport } from '../app/api/transport';
import { MuxTransport } from '../app/api/transport-mux';

export const transports = { fetch: fetchTransport, mux: new MuxTransport() };
