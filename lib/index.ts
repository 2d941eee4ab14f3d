/**
 * The package's main entry (`import … from 'viur-session-functions'`, package.json `main`, `types`
 * and "."): everything a Node service needs, without loading the Google clients. It is the only
 * entry of the library's modules (the package has no per-module subpaths), so what a user needs of
 * them is exported here. The Datastore store is its own entry (`viur-session-functions/datastore-store`)
 * because loading it loads the Datastore client; createRuntime() loads it only when the
 * configuration asks for it, and the kill publisher loads Pub/Sub only when it first publishes.
 * The other entries: `/functions` (registers the Cloud Functions), `/client` (browser), `/testing`
 * (the SessionStore contract suite), `/express` (the middleware: lib/express/index.ts).
 * The viur format's session layer (ViurSessions, createViurSessions) loads the Datastore client
 * only when createViurSessions() is called without one.
 */
export { GUEST_USER, MAX_USER_BYTES } from './core/limits';
export { Session, type SaveOutcome } from './core/session';
export {
  SessionManager,
  type EndSessionOptions,
  type RequestInfo,
  type SessionManagerOptions,
  type WithSessionOptions,
} from './core/manager';
export type { EndReason, EventSink, OutboxRecord, SessionEvent, SessionEventType } from './core/events';
export type { SessionSettings } from './core/settings';
export type {
  Decision,
  FindKeysOptions,
  HeadPage,
  HeadRef,
  KeyPage,
  SessionHead,
  SessionSelector,
  SessionStore,
  StorageKey,
  StoredSession,
  WriteSet,
} from './store/sessionStore';
export { deviceHandle, type Device, type SessionRef } from './core/devices';
export { MemorySessionStore } from './store/memoryStore';
export { createRuntime, createStore, type Runtime } from './setup/runtime';
export { CONFIG_VARIABLES, loadConfig, type Config, type ConfigVariable } from './setup/config';
export {
  closePublishers,
  publisherFor,
  publishKill,
  pubSubPublisher,
  pushPublisher,
  type KillDestination,
  type KillPublisher,
} from './jobs/killPublisher';
export {
  MalformedKillMessageError,
  encodeKillMessage,
  killMessageData,
  parseIssuedAt,
  parseKillMessageData,
  validateKillMessage,
  type KillMessage,
  type KillMessageData,
  type KillTarget,
} from './jobs/killMessage';
export {
  ConfigError,
  DataTooLargeError,
  InvalidKeyError,
  InvalidUserError,
  InvalidValueError,
  KeyNotFoundError,
  SecurityKeyConflictError,
  SessionEndedError,
  SessionError,
  StoreUnavailableError,
  TooManyKeysError,
} from './core/errors';
export { CredentialsUnavailableError } from './setup/credentials';
export type { JsonPrimitive, JsonValue, SessionData } from './core/json';
export {
  ViurCsrfError,
  ViurDraft,
  ViurNotLoggedInError,
  ViurSessions,
  viurRandom,
  type ViurCsrfProof,
  type ViurOutcome,
  type ViurSessionView,
  type ViurSessionsOptions,
} from './viur/sessions';
export { createViurSessions } from './viur/runtime';
export { entityJson, propertyValue, toJson, type RawEntity, type RawKey, type RawValue } from './viur/entity';
export { clearedViurCookie, viurCookie, type ViurCookieSettings } from './viur/cookie';
export type { Clock } from './core/clock';
export type { RandomSource } from './core/ids';
