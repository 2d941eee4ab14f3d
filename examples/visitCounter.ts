/**
 * Using the session library inside your own Node service: a functions-framework HTTP handler
 * that counts a visitor's page views in their session. The same three calls (load, change,
 * save) work in Express or any framework that gives you the Cookie header and lets you set
 * response headers.
 */
import type { Request, Response } from '@google-cloud/functions-framework';
import type { SessionManager } from '../lib/core/manager';

export function visitCounter(sessions: SessionManager) {
  return async (req: Request, res: Response): Promise<void> => {
    // One Datastore lookup; a junk or missing cookie costs none and yields a fresh session.
    const session = await sessions.load(req.get('cookie'));
    const visits = session.get<number>('visits', 0) + 1;
    session.set('visits', visits);
    // Merges this request's changes into what is stored (in a transaction) and says what cookie to send.
    const outcome = await sessions.save(session);
    if (outcome.setCookie) res.append('Set-Cookie', outcome.setCookie);
    res.json({ visits, user: session.user });
  };
}
