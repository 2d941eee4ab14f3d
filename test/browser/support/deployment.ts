import type { Server } from 'node:http';
import { digest } from '../../../lib/core/ids';
import type { StoredSession } from '../../../lib/store/sessionStore';
import { startApi, type ApiHarness } from '../../support/api';
import { close, httpsFront, listen, site, type Seen } from './browser';

/**
 * The documented cross-origin deployment: the API at https://sessions.example.test:<port> (the
 * functions-framework server behind TLS, as Cloud Run serves it), a page at
 * https://www.example.test:<port> that loads the browser client and points it at the API.
 */
export interface Deployment {
  api: ApiHarness;
  apiOrigin: string;
  pageOrigin: string;
  /** Requests as they reached the API's front. */
  seen: Seen[];
  /** Switch the API's configuration; the page's origin stays allowed unless `allowedOrigins` is given. */
  configure(env?: Record<string, string>): void;
  /** The session cookie's name in the current configuration. */
  cookieName(): string;
  /** The stored entity of the session a cookie value names. */
  stored(cookieValue: string): Promise<StoredSession | null>;
  stop(): Promise<void>;
}

export const PAGE = (apiOrigin: string) => `<!doctype html><meta charset="utf-8"><title>page</title>
<script type="module">
import { SessionClient } from '/client/sessionClient.mjs';
window.api = ${JSON.stringify(apiOrigin)};
window.client = new SessionClient({ baseUrl: window.api });
window.ready = true;
</script>`;

export async function startDeployment(extraPages: Record<string, string> = {}): Promise<Deployment> {
  const api = await startApi();
  const apiPort = await listen(api.server);
  const seen: Seen[] = [];
  const front = httpsFront(apiPort, seen);
  const apiOrigin = `https://sessions.example.test:${await listen(front)}`;
  const page: Server = site({ '/': PAGE(apiOrigin), ...extraPages });
  const pageOrigin = `https://www.example.test:${await listen(page)}`;
  const configure = (env: Record<string, string> = {}) => {
    api.use({ SESSION_ALLOWED_ORIGINS: pageOrigin, ...env });
  };
  configure();
  return {
    api,
    apiOrigin,
    pageOrigin,
    seen,
    configure,
    cookieName: () => api.runtime.config.session.cookie.name,
    stored: (cookieValue) => api.store.get(digest(cookieValue)),
    async stop() {
      await Promise.all([close(front), close(page), close(api.server)]);
    },
  };
}
