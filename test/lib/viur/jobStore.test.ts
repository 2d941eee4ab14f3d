import { batchDelete } from '../../../lib/jobs/batchDelete';
import { ViurJobStore } from '../../../lib/viur/jobStore';
import { legacyUrlsafeKey } from '../../../lib/viur/userKey';
import { datastore, uniqueNamespace } from '../../support/fixtures';
import { namesOf, putAll, viurSecurityKeyEntity, viurSessionEntity } from '../../support/viurFixtures';

const ds = datastore();
const clock = { now: () => Date.now() };
const engine = { batchSize: 7, parallelism: 2, deadline: Date.now() + 600_000, clock };
const ALICE = legacyUrlsafeKey({ projectId: 'session-test' }, [{ kind: 'user', name: 'alice' }]);
const NOW_S = Date.now() / 1000;

interface RawValue {
  excludeFromIndexes?: boolean;
  valueType?: string;
  entityValue?: { key?: unknown; properties: Record<string, RawValue> };
}

/** The entity as the emulator returns it on the wire (a Lookup through the client's request path): value types and index flags. */
function rawLookup(namespace: string, kind: string, name: string): Promise<Record<string, RawValue>> {
  return new Promise((resolve, reject) => {
    ds.request_(
      {
        client: 'DatastoreClient',
        method: 'lookup',
        reqOpts: { keys: [{ partitionId: { namespaceId: namespace }, path: [{ kind, name }] }] },
        gaxOpts: {},
      },
      (err, resp) => {
        if (err) return reject(err);
        const found = (resp as { found: Array<{ entity: { properties: Record<string, RawValue> } }> }).found;
        resolve(found[0].entity.properties);
      },
    );
  });
}

describe('ViUR fixtures: what the Node client writes is the shape ViUR stores', () => {
  it('value types and raw index flags, read back through the emulator', async () => {
    const namespace = uniqueNamespace('vfix');
    const e = viurSessionEntity(ds, namespace, {
      user: ALICE,
      lastseen: 1_767_268_800, // whole seconds: must still be a double
      userEntity: { path: ['user', 'alice'], properties: { name: 'alice', access: ['root'] } },
    });
    const k = viurSecurityKeyEntity(ds, namespace, { session: e.cookie, until: Date.now() + 60_000, custom: { purpose: 'x' } });
    await putAll(ds, [e, k]);
    const session = await rawLookup(namespace, 'viur-session', e.cookie);
    expect(session.lastseen).toMatchObject({ valueType: 'doubleValue' });
    expect(session.lastseen.excludeFromIndexes).toBeFalsy();
    expect(session.user).toMatchObject({ valueType: 'stringValue' });
    expect(session.user.excludeFromIndexes).toBeFalsy();
    expect(session.static_security_key.excludeFromIndexes).toBeFalsy();
    expect(session.data).toMatchObject({ valueType: 'entityValue', excludeFromIndexes: true });
    const inner = session.data.entityValue!.properties;
    expect(inner.language.excludeFromIndexes).toBeFalsy();
    expect(inner.long.excludeFromIndexes).toBe(true);
    expect(inner.ratio).toMatchObject({ valueType: 'doubleValue' });
    expect(inner.when).toMatchObject({ valueType: 'timestampValue' });
    expect(inner.user.entityValue!.key).toMatchObject({ path: [{ kind: 'user', name: 'alice' }] });
    const skey = await rawLookup(namespace, 'viur-securitykey', k.name);
    expect(skey.viur_until).toMatchObject({ valueType: 'timestampValue' });
    expect(skey.viur_session).toMatchObject({ valueType: 'stringValue' });
    expect(skey.viur_until.excludeFromIndexes).toBeFalsy();
    const unbound = viurSecurityKeyEntity(ds, namespace, { session: null, until: Date.now() });
    await putAll(ds, [unbound]);
    expect((await rawLookup(namespace, 'viur-securitykey', unbound.name)).viur_session).toMatchObject({ valueType: 'nullValue' });
  });
});

describe('ViurJobStore (the engine on a ViUR app’s entities)', () => {
  it('a user selector deletes that user’s sessions and their bound one-time keys, nothing else', async () => {
    const namespace = uniqueNamespace('vjob');
    const jobs = new ViurJobStore({ datastore: ds, kind: 'viur-session', namespace });
    const alice = Array.from({ length: 40 }, () => viurSessionEntity(ds, namespace, { user: ALICE }));
    const guests = Array.from({ length: 5 }, () => viurSessionEntity(ds, namespace));
    const bound = alice.map((s) => viurSecurityKeyEntity(ds, namespace, { session: s.cookie, until: Date.now() + 60_000 }));
    const guestKey = viurSecurityKeyEntity(ds, namespace, { session: guests[0].cookie, until: Date.now() + 60_000 });
    const unbound = viurSecurityKeyEntity(ds, namespace, { session: null, until: Date.now() + 60_000 });
    await putAll(ds, [...alice, ...guests, ...bound, guestKey, unbound]);

    const report = await batchDelete({
      ...engine,
      store: jobs.sessions({ withSecurityKeys: true }),
      selector: { kind: 'user', user: ALICE },
    });
    expect(report).toMatchObject({ deleted: 40, done: true });
    expect(await namesOf(ds, namespace, 'viur-session')).toEqual(guests.map((g) => g.cookie).sort());
    expect(await namesOf(ds, namespace, 'viur-securitykey')).toEqual([guestKey.name, unbound.name].sort());
  });

  it('null selects every session; __guest__ only the guests', async () => {
    const namespace = uniqueNamespace('vjob');
    const jobs = new ViurJobStore({ datastore: ds, kind: 'viur-session', namespace });
    const alice = viurSessionEntity(ds, namespace, { user: ALICE });
    const guests = Array.from({ length: 3 }, () => viurSessionEntity(ds, namespace));
    await putAll(ds, [alice, ...guests]);
    await batchDelete({ ...engine, store: jobs.sessions(), selector: { kind: 'user', user: '__guest__' } });
    expect(await namesOf(ds, namespace, 'viur-session')).toEqual([alice.cookie]);
    await batchDelete({ ...engine, store: jobs.sessions(), selector: { kind: 'user', user: null } });
    expect(await namesOf(ds, namespace, 'viur-session')).toEqual([]);
  });

  it('a stale selector compares lastseen as a double (whole and fractional seconds alike)', async () => {
    const namespace = uniqueNamespace('vjob');
    const jobs = new ViurJobStore({ datastore: ds, kind: 'viur-session', namespace });
    const old = [viurSessionEntity(ds, namespace, { lastseen: 1000 }), viurSessionEntity(ds, namespace, { lastseen: NOW_S - 7200.5 })];
    const live = [viurSessionEntity(ds, namespace, { lastseen: NOW_S }), viurSessionEntity(ds, namespace, { lastseen: Math.floor(NOW_S) })];
    await putAll(ds, [...old, ...live]);
    const report = await batchDelete({ ...engine, store: jobs.sessions(), selector: { kind: 'stale', lastseenBefore: NOW_S - 3600 } });
    expect(report.deleted).toBe(2);
    expect(await namesOf(ds, namespace, 'viur-session')).toEqual(live.map((s) => s.cookie).sort());
  });

  it('expired one-time keys go, live ones (bound or not) stay', async () => {
    const namespace = uniqueNamespace('vjob');
    const jobs = new ViurJobStore({ datastore: ds, kind: 'viur-session', namespace });
    const expired = [
      viurSecurityKeyEntity(ds, namespace, { session: null, until: Date.now() - 3_600_000 }),
      viurSecurityKeyEntity(ds, namespace, { session: 'x'.repeat(42), until: Date.now() - 3_600_000 }),
    ];
    const live = [
      viurSecurityKeyEntity(ds, namespace, { session: null, until: Date.now() + 3_600_000 }),
      viurSecurityKeyEntity(ds, namespace, { session: 'y'.repeat(42), until: Date.now() + 3_600_000 }),
    ];
    await putAll(ds, [...expired, ...live]);
    await batchDelete({ ...engine, store: jobs.securityKeys(), selector: { kind: 'expiredKeys', before: Date.now() - 300_000 } });
    expect(await namesOf(ds, namespace, 'viur-securitykey')).toEqual(live.map((k) => k.name).sort());
  });

  it('existing() finds which killed keys were written back, beyond one lookup of 1,000', async () => {
    const namespace = uniqueNamespace('vjob');
    const jobs = new ViurJobStore({ datastore: ds, kind: 'viur-session', namespace });
    const back = Array.from({ length: 3 }, () => viurSessionEntity(ds, namespace));
    await putAll(ds, back);
    const absent = Array.from({ length: 1200 }, (_, i) => `absent${String(i).padStart(36, '0')}`);
    const found = await jobs.existing([...absent.slice(0, 1100), back[0].cookie, ...absent.slice(1100), back[1].cookie, back[2].cookie]);
    expect(found.sort()).toEqual(back.map((b) => b.cookie).sort());
  });
});
