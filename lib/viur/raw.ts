import type { Datastore } from '@google-cloud/datastore';
import { StoreUnavailableError } from '../core/errors';
import type { RawEntity, RawKey } from './entity';

/**
 * The few calls of the Datastore API the viur format makes below the client's entity layer (which
 * would turn ViUR's values into its own and back, losing their exact types and index flags): the
 * session layer (sessions.ts) and the job store (jobStore.ts) share them.
 */

/** What a Lookup answers, in the API's own form. */
export interface LookupResponse {
  found?: Array<{ entity: RawEntity }> | null;
  missing?: unknown[] | null;
  deferred?: RawKey[] | null;
}

/**
 * The API form of the key `kind`/`name` in `namespace` (none or empty: the default namespace).
 *
 * @example
 * rawKey('viur-session', cookie, undefined); // { path: [{ kind: 'viur-session', name: cookie }] }
 */
export function rawKey(kind: string, name: string, namespace: string | undefined): RawKey {
  const path = [{ kind, name }];
  return namespace ? { partitionId: { namespaceId: namespace }, path } : { path };
}

/**
 * One call of the generated DatastoreClient through `via` (the client, or a Transaction whose id is
 * set: then a lookup reads in it and a commit is transactional), as a promise.
 *
 * @example
 * const r = await rawRequest<LookupResponse>(datastore, 'lookup', { keys }, { timeout: 5000 });
 */
export function rawRequest<R>(via: Pick<Datastore, 'request_'>, method: string, reqOpts: object, gaxOpts: object): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    via.request_({ client: 'DatastoreClient', method, reqOpts, gaxOpts }, (err: Error | null | undefined, r: unknown) =>
      err ? reject(err) : resolve(r as R),
    );
  });
}

/**
 * The entities found for `keys`, asking again for the keys Datastore deferred: three Lookups at
 * most, then StoreUnavailableError (a store that keeps deferring is overloaded).
 *
 * @example
 * const found = await lookupAll(keys, (pending) => rawRequest<LookupResponse>(datastore, 'lookup', { keys: pending }, gax));
 */
export async function lookupAll(keys: RawKey[], lookup: (pending: RawKey[]) => Promise<LookupResponse>): Promise<RawEntity[]> {
  const found: RawEntity[] = [];
  let pending = keys;
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt >= 3) throw new StoreUnavailableError(undefined, new Error('the lookup stayed deferred'));
    const r = await lookup(pending);
    for (const f of r.found ?? []) found.push(f.entity);
    pending = r.deferred ?? [];
  }
  return found;
}
