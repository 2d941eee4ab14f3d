import { GUEST_USER, MAX_COMMIT_MUTATIONS, MAX_USER_BYTES, TOPIC_ID_PATTERN } from '../../../lib/core/limits';

/** The shared limits are the contract with Datastore, Pub/Sub and stored data: changing one is a migration. */
describe('limits', () => {
  test('the guest user, the longest user id and the commit size stored sessions and deletions rely on', () => {
    expect([GUEST_USER, MAX_USER_BYTES, MAX_COMMIT_MUTATIONS]).toEqual(['__guest__', 500, 500]);
  });

  test('a Pub/Sub topic id: a letter first, 3 to 255 characters of the allowed set, anchored at both ends', () => {
    for (const ok of ['abc', 'session-kill', 'a.b_c~d+e%f-g', `a${'b'.repeat(254)}`]) expect(TOPIC_ID_PATTERN.test(ok)).toBe(true);
    for (const bad of ['ab', '1abc', '-abc', `a${'b'.repeat(255)}`, 'ab c', ' abc', 'abc ', 'abc/def', 'a#bc']) {
      expect(TOPIC_ID_PATTERN.test(bad)).toBe(false);
    }
  });
});
