import type { Request, Response } from '@google-cloud/functions-framework';

/** Placeholder until the cleanup lands (issue 4). */
export async function startClearSessions(_req: Request, res: Response): Promise<void> {
  res.status(501).json({ error: { code: 'not_implemented', message: 'startClearSessions is not implemented yet' } });
}
