import { GUEST_USER } from '../core/limits';

/**
 * The `user` string a ViUR 3.8 app stores on its sessions: `str(user_key)`, which is the Python
 * Datastore client's `Key.to_legacy_urlsafe()` (an App Engine `Reference` protobuf, base64url
 * without padding). docs/viur-kill-cleanup.md#the-user-string cites the lines of viur-core and of
 * the client this follows.
 */

/** One element of a key path: a kind and either a name or an integer id. */
export type KeyPathElement = { kind: string; name: string } | { kind: string; id: bigint };

/** Where a key lives, as far as the legacy string records it. */
export interface KeyPartition {
  /** The project id as the app's client has it (no `s~`/`e~` location prefix: ViUR adds none). */
  projectId: string;
  /** The Datastore namespace; undefined or empty for the default one (written only when set). */
  namespace?: string;
}

/** A key path or user string that cannot be turned into ViUR's stored `user` string. */
export class KeyPathError extends Error {
  readonly code = 'invalid_key_path';
  constructor(message: string) {
    super(message);
    this.name = 'KeyPathError';
  }
}

const INT64_MAX = 2n ** 63n - 1n;

function varint(value: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

function lengthDelimited(field: number, bytes: Buffer | number[]): number[] {
  return [...varint(BigInt((field << 3) | 2)), ...varint(BigInt(bytes.length)), ...bytes];
}

const utf8 = (text: string) => Buffer.from(text, 'utf8');

/**
 * ViUR's `db.Key` turns a name made of digits only into an integer id (viur-core db/types.py): so
 * does this, for ASCII digits (`'007'` is id 7). Python's `isdigit` also accepts other Unicode
 * digits, whose conversion is not worth guessing: such a name is refused.
 */
function element(kind: string, idOrName: string): KeyPathElement {
  if (kind.length === 0) throw new KeyPathError('key path: a kind must not be empty');
  if (idOrName.length === 0) throw new KeyPathError('key path: a name must not be empty');
  if (/^[0-9]+$/.test(idOrName)) {
    const id = BigInt(idOrName);
    if (id === 0n || id > INT64_MAX) throw new KeyPathError('key path: an id must be from 1 to 2^63-1');
    return { kind, id };
  }
  if (/^\p{Nd}+$/u.test(idOrName)) throw new KeyPathError('key path: a name of non-ASCII digits is not supported; pass the stored string');
  return { kind, name: idOrName };
}

/**
 * Parses `kind/name[/kind/name…]` (`user/alice`, `user/123`, `company/acme/user/alice`): kinds and
 * names separated by `/`, an even number of parts, digit-only names as integer ids. A name that
 * holds `/` cannot be written this way: pass the stored string instead.
 *
 * @example
 * parseKeyPath('user/123'); // [{ kind: 'user', id: 123n }]
 * parseKeyPath('user'); // throws KeyPathError
 */
export function parseKeyPath(path: string): KeyPathElement[] {
  const parts = path.split('/');
  if (parts.length % 2 !== 0) throw new KeyPathError('key path: needs kind/name pairs, e.g. user/alice');
  const elements: KeyPathElement[] = [];
  for (let i = 0; i < parts.length; i += 2) elements.push(element(parts[i]!, parts[i + 1]!));
  return elements;
}

/**
 * The legacy urlsafe form of a key, byte for byte what the Python client's `to_legacy_urlsafe()`
 * gives without a location prefix: `Reference{app = 13, path = 14, name_space = 20}` serialised in
 * field order, each path element a group (field 1) of `type = 2`, `id = 3` or `name = 4`; base64url
 * without `=`. `database_id` (field 23) is never written: the Python client refuses a key of a
 * named database instead.
 *
 * @example
 * legacyUrlsafeKey({ projectId: 'my-project' }, [{ kind: 'user', name: 'alice' }]); // 'agpteS1wcm9qZWN0cg8LEgR1c2VyIgVhbGljZQw'
 */
export function legacyUrlsafeKey(partition: KeyPartition, path: KeyPathElement[]): string {
  if (path.length === 0) throw new KeyPathError('key path: must not be empty');
  if (partition.projectId.length === 0) throw new KeyPathError('key path: no project id');
  const pathBytes: number[] = [];
  for (const e of path) {
    pathBytes.push(0x0b); // start group, field 1
    pathBytes.push(...lengthDelimited(2, utf8(e.kind)));
    if ('id' in e) pathBytes.push(0x18, ...varint(e.id));
    else pathBytes.push(...lengthDelimited(4, utf8(e.name)));
    pathBytes.push(0x0c); // end group, field 1
  }
  const bytes = [...lengthDelimited(13, utf8(partition.projectId)), ...lengthDelimited(14, pathBytes)];
  if (partition.namespace) bytes.push(...lengthDelimited(20, utf8(partition.namespace)));
  return Buffer.from(bytes).toString('base64url');
}

/**
 * The stored `user` a kill target means in `viur` format: null (every session) and `__guest__`
 * stay; a string with `/` is a key path converted with legacyUrlsafeKey for `partition`; any other
 * string is taken as the stored string itself (`str(skel["key"])` in the app).
 *
 * @example
 * viurUser('user/alice', { projectId: 'my-project' }); // 'agpteS1wcm9qZWN0cg8LEgR1c2VyIgVhbGljZQw'
 * viurUser('agpteS1wcm9qZWN0cg8LEgR1c2VyIgVhbGljZQw', { projectId: 'my-project' }); // unchanged
 * viurUser(null, { projectId: 'my-project' }); // null
 */
export function viurUser(target: string | null, partition: KeyPartition): string | null {
  if (target === null || target === GUEST_USER || !target.includes('/')) return target;
  return legacyUrlsafeKey(partition, parseKeyPath(target));
}
