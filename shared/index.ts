/**
 * The package's main entry (`import … from 'viur-session-functions'`): the session library without
 * the Google clients. The Datastore store is its own entry (`viur-session-functions/datastore-store`)
 * because loading it loads the Datastore client; createRuntime() loads it only when the
 * configuration asks for it, and the kill publisher loads Pub/Sub only when it first publishes.
 */
export { GUEST_USER, MAX_USER_BYTES, Session, SessionManager, type RequestInfo, type SaveOutcome, type SessionManagerOptions, type SessionSettings, type WithSessionOptions } from './session';
export type { Decision, HeadPage, KeyPage, SessionHead, SessionSelector, SessionStore, StorageKey, StoredSession, WriteSet } from './store';
export { deviceHandle, type Device, type SessionRef } from './devices';
export { MemorySessionStore } from './memoryStore';
export { createRuntime, createStore, type Runtime } from './runtime';
export { CONFIG_VARIABLES, loadConfig, type Config, type ConfigVariable } from './config';
export { closePublishers, publisherFor, publishKill, pubSubPublisher, pushPublisher, type KillDestination, type KillPublisher } from './killPublisher';
export { MalformedKillMessageError, killMessageData, parseIssuedAt, type KillTarget } from './killMessage';
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
} from './errors';
export { CredentialsUnavailableError } from './credentials';
export type { JsonPrimitive, JsonValue, SessionData } from './json';
export type { Clock } from './clock';
export type { RandomSource } from './ids';
