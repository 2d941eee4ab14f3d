import type { CloudEvent } from '@google-cloud/functions-framework';

/** Placeholder until the kill fan-out lands (issue 4). */
export async function killSessionByUser(_event: CloudEvent<unknown>): Promise<void> {
  throw new Error('killSessionByUser is not implemented yet');
}
