import type { Request, Response } from '@google-cloud/functions-framework';

/** Placeholder until the session API lands (issue 3). */
export async function sessionApi(_req: Request, res: Response): Promise<void> {
  res.status(501).json({ error: { code: 'not_implemented', message: 'sessionApi is not implemented yet' } });
}
