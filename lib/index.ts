/**
 * The package's main entry (`import … from 'viur-session-functions'`): the session library without
 * the Google clients. The Datastore store is its own entry (`viur-session-functions/datastore-store`)
 * because loading it loads the Datastore client; createRuntime() loads it only when the
 * configuration asks for it, and the kill publisher loads Pub/Sub only when it first publishes.
 */
export { GUEST_USER, MAX_USER_BYTES } from './core/limits';
export { Session, type SaveOutcome } from './core/session';
export { SessionManager, type RequestInfo, type SessionManagerOptions, type WithSessionOptions } from './core/manager';
export type { SessionSettings } from './core/settings';
export type { Decision, HeadPage, KeyPage, SessionHead, SessionSelector, SessionStore, StorageKey, StoredSession, WriteSet } from './store/sessionStore';
export { deviceHandle, type Device, type SessionRef } from './core/devices';
export { MemorySessionStore } from './store/memoryStore';
export { createRuntime, createStore, type Runtime } from './setup/runtime';
export { CONFIG_VARIABLES, loadConfig, type Config, type ConfigVariable } from './setup/config';
export { closePublishers, publisherFor, publishKill, pubSubPublisher, pushPublisher, type KillDestination, type KillPublisher } from './jobs/killPublisher';
export { MalformedKillMessageError, killMessageData, parseIssuedAt, type KillTarget } from './jobs/killMessage';
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
} from './core/errors';
export { CredentialsUnavailableError } from './setup/credentials';
export type { JsonPrimitive, JsonValue, SessionData } from './core/json';
export type { Clock } from './core/clock';
export type { RandomSource } from './core/ids';
