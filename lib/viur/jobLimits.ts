/**
 * Bounds of the viur format's kill (lib/jobs/viurJobs.ts). A leaf module, like lib/core/limits.ts.
 */

/**
 * Killed session keys one resweep message carries: 20,000 keys of 42 characters are about 900 KB of
 * JSON, inside a kill message's 1 MiB.
 */
export const MAX_RESWEEP_KEYS = 20_000;

/**
 * Killed keys one kill invocation remembers for the resweep (about 10 MB): past it the invocation
 * stops deleting and continues in a follow-up message, so no killed key goes without a resweep.
 */
export const MAX_RESWEEP_KEYS_PER_RUN = 100_000;
