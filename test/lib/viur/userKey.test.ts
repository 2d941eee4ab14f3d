import * as protobuf from 'protobufjs';
import { KeyPathError, legacyUrlsafeKey, parseKeyPath, viurUser } from '../../../lib/viur/userKey';

/**
 * The App Engine Reference message as the Python Datastore client's _app_engine_key.proto declares
 * it (proto2, the path elements a group), decoded with protobufjs: an implementation independent
 * of the encoder under test.
 */
const root = protobuf
  .parse(
    `
syntax = "proto2";
message Reference {
  required string app = 13;
  optional string name_space = 20;
  required Path path = 14;
  optional string database_id = 23;
}
message Path {
  repeated group Element = 1 {
    required string type = 2;
    optional int64 id = 3;
    optional string name = 4;
  }
}
`,
  )
  .root.resolveAll();
const Reference = root.lookupType('Reference');

function decode(urlsafe: string) {
  const message = Reference.decode(Buffer.from(urlsafe, 'base64url'));
  return Reference.toObject(message, { longs: String, defaults: false }) as {
    app: string;
    nameSpace?: string;
    path: { element: Array<{ type: string; id?: string; name?: string }> };
  };
}

describe('the user string ViUR stores (str(user_key))', () => {
  it('matches the published ndb/python-client examples byte for byte (namespace, integer id, padding stripped)', () => {
    // From the Python client's unit tests of to_legacy_urlsafe (keys made with ndb.Key(...).urlsafe()).
    expect(
      legacyUrlsafeKey({ projectId: 's~sample-app', namespace: 'space' }, [
        { kind: 'Parent', id: 59n },
        { kind: 'Child', name: 'Feather' },
      ]),
    ).toBe('agxzfnNhbXBsZS1hcHByHgsSBlBhcmVudBg7DAsSBUNoaWxkIgdGZWF0aGVyDKIBBXNwYWNl');
    expect(legacyUrlsafeKey({ projectId: 's~fire' }, [{ kind: 'Kind', name: 'Thing' }])).toBe('agZzfmZpcmVyDwsSBEtpbmQiBVRoaW5nDA');
  });

  it('user/alice becomes a Reference with the bare project id, no namespace and a named element', () => {
    const text = viurUser('user/alice', { projectId: 'my-project' })!;
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decode(text)).toEqual({ app: 'my-project', path: { element: [{ type: 'user', name: 'alice' }] } });
  });

  it('a digit-only name is an integer id, as ViUR’s db.Key makes it (leading zeros dropped)', () => {
    expect(decode(viurUser('user/123', { projectId: 'p' })!).path.element).toEqual([{ type: 'user', id: '123' }]);
    expect(viurUser('user/007', { projectId: 'p' })).toBe(viurUser('user/7', { projectId: 'p' }));
    expect(decode(viurUser('user/9223372036854775807', { projectId: 'p' })!).path.element[0].id).toBe('9223372036854775807');
  });

  it('deeper paths keep their order; a namespace is written as name_space, an empty one not at all', () => {
    const text = viurUser('company/acme/user/42', { projectId: 'p', namespace: 'shop' })!;
    expect(decode(text)).toEqual({
      app: 'p',
      nameSpace: 'shop',
      path: {
        element: [
          { type: 'company', name: 'acme' },
          { type: 'user', id: '42' },
        ],
      },
    });
    expect(viurUser('user/a', { projectId: 'p', namespace: '' })).toBe(viurUser('user/a', { projectId: 'p' }));
  });

  it('non-ASCII names are UTF-8', () => {
    expect(decode(viurUser('user/zoë', { projectId: 'p' })!).path.element[0].name).toBe('zoë');
  });

  it('the stored string, __guest__ and null pass unchanged', () => {
    const stored = viurUser('user/alice', { projectId: 'p' })!;
    expect(viurUser(stored, { projectId: 'p' })).toBe(stored);
    expect(viurUser('__guest__', { projectId: 'p' })).toBe('__guest__');
    expect(viurUser(null, { projectId: 'p' })).toBeNull();
  });

  it.each(['user', 'user/alice/company', 'user/', '/alice', 'user/0', 'user/9223372036854775808', 'user/١٢٣'])(
    'refuses the key path %j',
    (path) => {
      expect(() => parseKeyPath(path)).toThrow(KeyPathError);
    },
  );
});
