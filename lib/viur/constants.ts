/**
 * What a ViUR 3.8 app fixes about its stored sessions and security keys (viur-core v3.8.35,
 * src/viur/core/session.py and securitykey.py; docs/viur.md cites the lines). A leaf module: the
 * viur format's store, kill and cleanup read these and nothing else decides them.
 */

/** Kind of ViUR's one-time security keys (the session kind itself is SESSION_KIND, `viur-session` by default). */
export const VIUR_SECURITY_KEY_KIND = 'viur-securitykey';

/** ViUR's cookie value, which is also the session entity's key name: `utils.string.random(42)`. */
export const VIUR_COOKIE_LENGTH = 42;

/** ViUR's static security key: `utils.string.random(13)`; one-time keys have the same length. */
export const VIUR_KEY_LENGTH = 13;

/** The alphabet of `utils.string.random`: ASCII letters and digits. */
export const VIUR_ID_PATTERN = /^[A-Za-z0-9]+$/;

/** `load()` rewrites `lastseen` when it is older than this (5 minutes). */
export const VIUR_REFRESH_SECONDS = 300;
