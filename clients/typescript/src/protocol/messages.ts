/**
 * Messages of the WebSocket protocol `threadline.v1`: checking what the client
 * sends, and reading what the server sends.
 *
 * Messages are plain objects of the types generated from the protocol's JSON
 * Schema (`./types.ts`). {@link encodeMessage} writes a client message in the
 * canonical form (`type` first, then `rid`, then the other fields in the
 * schema's order; optional fields only when set). {@link parseServerMessage}
 * reads a server message leniently about fields it does not know (a newer
 * server may add some; they are dropped) and strictly about the ones it
 * does. Mirrors Python's `threadline.protocol.messages`.
 *
 * @module
 */

import { InvalidOffset, ProtocolError } from "../errors.js";
import { ErrorCode } from "./codes.js";
import { encodeJson, type JSONObject } from "./frames.js";
import type {
  Actor,
  ClientMessage,
  ErrorMessage,
  Event,
  Events,
  Gone,
  GoneReason,
  Presence,
  PresenceStatus,
  Published,
  ServerMessage,
  Subscribed,
  View,
} from "./types.js";

export const RID = /^[A-Za-z0-9._:-]{1,64}$/;
export const SESSION = /^[A-Za-z0-9._:-]{1,128}$/;
export const DEVICE = /^[A-Za-z0-9_-]{1,64}$/;
export const CODE = /^[a-z][a-z0-9_]{0,63}$/;
export const OFFSET = /^[0-9]{16}_[0-9]{16}$/;
export const VIEWS: readonly View[] = ["raw", "compact"];
export const STATUSES: readonly PresenceStatus[] = ["active", "idle", "typing"];
export const GONE_REASONS: readonly GoneReason[] = ["deleted", "forbidden", "offset_gone"];
export const ROLES: readonly string[] = ["customer", "ai", "agent", "supervisor", "service", "server"];
/** `-1`: the start of a session. */
export const START = "-1";
/** `now`: the tail of a session. */
export const NOW = "now";
const MAX_TOKEN = 16384;

/** The types of the messages a server sends. */
export const SERVER_TYPES: ReadonlySet<string> = new Set([
  "subscribed",
  "events",
  "published",
  "error",
  "presence",
  "gone",
]);

function invalid(message: string): ProtocolError {
  return new ProtocolError(message, ErrorCode.INVALID_MESSAGE);
}

function shown(value: string): string {
  return JSON.stringify(value.slice(0, 64));
}

// Checks

/** `value` matches `pattern` in full. */
export function match(pattern: RegExp, value: string, what: string): void {
  if (!pattern.test(value)) throw invalid(`${what} is malformed: ${shown(value)}`);
}

/** `value` is an offset (not `-1` or `now`). */
export function checkOffset(value: string, what: string): void {
  if (!OFFSET.test(value)) throw new InvalidOffset(`${what} is malformed: ${shown(value)}`);
}

/** `value` is an offset, `-1` or `now`. */
export function checkOffsetParam(value: string, what: string): void {
  if (value !== START && value !== NOW) checkOffset(value, what);
}

/** `value` is one of `choices`. */
export function checkChoice(value: string, choices: readonly string[], what: string): void {
  if (!choices.includes(value)) throw invalid(`${what} must be one of ${choices.join(", ")}`);
}

function checkToken(value: string, what: string): void {
  if (!(value.length > 0 && value.length <= MAX_TOKEN)) {
    throw invalid(`${what} must be 1 to ${MAX_TOKEN} characters`);
  }
}

/**
 * Check a message this client is about to send.
 *
 * @throws ProtocolError - a value is malformed (`invalid_message`, or
 *   `invalid_offset` for an offset).
 */
export function checkClientMessage(message: ClientMessage): void {
  switch (message.type) {
    case "hello":
      checkToken(message.token, "hello.token");
      if (message.device !== undefined) match(DEVICE, message.device, "hello.device");
      return;
    case "subscribe":
      match(RID, message.rid, "subscribe.rid");
      match(SESSION, message.session, "subscribe.session");
      checkOffsetParam(message.offset, "subscribe.offset");
      checkChoice(message.view, VIEWS, "subscribe.view");
      return;
    case "unsubscribe":
      if (message.rid !== undefined) match(RID, message.rid, "unsubscribe.rid");
      match(SESSION, message.session, "unsubscribe.session");
      return;
    case "publish":
      match(RID, message.rid, "publish.rid");
      match(SESSION, message.session, "publish.session");
      if (!Array.isArray(message.events) || message.events.length === 0) {
        throw invalid("publish.events must not be empty");
      }
      for (const event of message.events) {
        if (!isObject(event)) throw invalid("publish.events must be an array of objects");
      }
      if (message.expected_offset !== undefined) {
        checkOffset(message.expected_offset, "publish.expected_offset");
      }
      return;
    case "cursor":
      match(SESSION, message.session, "cursor.session");
      checkOffset(message.offset, "cursor.offset");
      return;
    case "presence":
      match(SESSION, message.session, "presence.session");
      checkChoice(message.status, STATUSES, "presence.status");
      return;
    case "refresh":
      checkToken(message.token, "refresh.token");
      return;
  }
}

/**
 * The canonical JSON text of one client message: `type` first, then `rid`,
 * then the other fields in the schema's order, optional ones only when set.
 */
export function encodeMessage(message: ClientMessage): string {
  let ordered: JSONObject;
  switch (message.type) {
    case "hello":
      ordered = { type: "hello", token: message.token };
      if (message.device !== undefined) ordered["device"] = message.device;
      break;
    case "subscribe":
      ordered = {
        type: "subscribe",
        rid: message.rid,
        session: message.session,
        offset: message.offset,
        view: message.view,
      };
      break;
    case "unsubscribe":
      ordered =
        message.rid === undefined
          ? { type: "unsubscribe", session: message.session }
          : { type: "unsubscribe", rid: message.rid, session: message.session };
      break;
    case "publish":
      ordered = { type: "publish", rid: message.rid, session: message.session, events: message.events };
      if (message.expected_offset !== undefined) ordered["expected_offset"] = message.expected_offset;
      break;
    case "cursor":
      ordered = { type: "cursor", session: message.session, offset: message.offset };
      break;
    case "presence":
      ordered = { type: "presence", session: message.session, status: message.status };
      break;
    case "refresh":
      ordered = { type: "refresh", token: message.token };
      break;
  }
  return encodeJson(ordered);
}

// Readers

function isObject(value: unknown): value is JSONObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function required(obj: JSONObject, name: string, keys: readonly string[]): void {
  for (const key of keys) {
    if (!(key in obj)) throw invalid(`${name}: missing field ${JSON.stringify(key)}`);
  }
}

function readStr(obj: JSONObject, key: string, name: string): string {
  const value = obj[key];
  if (typeof value !== "string") throw invalid(`${name}.${key} must be a string`);
  return value;
}

function readObject(obj: JSONObject, key: string, name: string): JSONObject {
  const value = obj[key];
  if (!isObject(value)) throw invalid(`${name}.${key} must be an object`);
  return value;
}

function readObjects(obj: JSONObject, key: string, name: string): JSONObject[] {
  const value = obj[key];
  if (!Array.isArray(value) || !value.every(isObject)) {
    throw invalid(`${name}.${key} must be an array of objects`);
  }
  return value;
}

function checkActor(actor: JSONObject, what: string): void {
  const id = actor["id"];
  if (typeof id !== "string" || id.length === 0) throw invalid(`${what}.id must be a non-empty string`);
  const role = actor["role"];
  if (typeof role !== "string") throw invalid(`${what}.role must be a string`);
  checkChoice(role, ROLES, `${what}.role`);
}

function parseSubscribed(obj: JSONObject): Subscribed {
  required(obj, "subscribed", ["rid", "session", "offset", "state"]);
  const message: Subscribed = {
    type: "subscribed",
    rid: readStr(obj, "rid", "subscribed"),
    session: readStr(obj, "session", "subscribed"),
    offset: readStr(obj, "offset", "subscribed"),
    state: readObject(obj, "state", "subscribed"),
  };
  match(RID, message.rid, "subscribed.rid");
  match(SESSION, message.session, "subscribed.session");
  checkOffset(message.offset, "subscribed.offset");
  return message;
}

function parseEvents(obj: JSONObject): Events {
  required(obj, "events", ["session", "events"]);
  const session = readStr(obj, "session", "events");
  const events = readObjects(obj, "events", "events");
  match(SESSION, session, "events.session");
  if (events.length === 0) throw invalid("events.events must not be empty");
  for (const event of events) {
    const offset = event["offset"];
    if (typeof offset !== "string") throw invalid("events.events: an event has no string offset");
    checkOffset(offset, "events.events offset");
  }
  // Events are checked for the offset that ordering and resume need only:
  // the server validated them before storing them.
  return { type: "events", session, events: events as unknown as Event[] };
}

function parsePublished(obj: JSONObject): Published {
  required(obj, "published", ["rid", "offsets"]);
  const rid = readStr(obj, "rid", "published");
  const offsets = obj["offsets"];
  if (!Array.isArray(offsets) || !offsets.every((x) => typeof x === "string")) {
    throw invalid("published.offsets must be an array of strings");
  }
  match(RID, rid, "published.rid");
  if (offsets.length === 0) throw invalid("published.offsets must not be empty");
  for (const offset of offsets) checkOffset(offset, "published.offsets");
  return { type: "published", rid, offsets };
}

function parseError(obj: JSONObject): ErrorMessage {
  required(obj, "error", ["code", "message"]);
  const message: ErrorMessage = {
    type: "error",
    code: readStr(obj, "code", "error"),
    message: readStr(obj, "message", "error"),
  };
  if ("rid" in obj) {
    message.rid = readStr(obj, "rid", "error");
    match(RID, message.rid, "error.rid");
  }
  if ("details" in obj) message.details = readObject(obj, "details", "error");
  match(CODE, message.code, "error.code");
  // Canonical key order: type, rid, code, message, details.
  const { type, rid, code, message: text, details } = message;
  return {
    type,
    ...(rid === undefined ? {} : { rid }),
    code,
    message: text,
    ...(details === undefined ? {} : { details }),
  };
}

function parsePresence(obj: JSONObject): Presence {
  required(obj, "presence", ["session", "actor", "status"]);
  const session = readStr(obj, "session", "presence");
  const actor = readObject(obj, "actor", "presence");
  const status = readStr(obj, "status", "presence");
  match(SESSION, session, "presence.session");
  checkActor(actor, "presence.actor");
  checkChoice(status, [...STATUSES, "offline"], "presence.status");
  return { type: "presence", session, actor: actor as unknown as Actor, status: status as Presence["status"] };
}

function parseGone(obj: JSONObject): Gone {
  required(obj, "gone", ["session", "reason"]);
  const reason = readStr(obj, "reason", "gone");
  checkChoice(reason, GONE_REASONS, "gone.reason");
  const message: Gone = { type: "gone", session: readStr(obj, "session", "gone"), reason: reason as GoneReason };
  match(SESSION, message.session, "gone.session");
  if ("earliest" in obj) {
    message.earliest = readStr(obj, "earliest", "gone");
    checkOffset(message.earliest, "gone.earliest");
  }
  if ("tail" in obj) {
    message.tail = readStr(obj, "tail", "gone");
    checkOffset(message.tail, "gone.tail");
  }
  return message;
}

const PARSERS: Readonly<Record<string, (obj: JSONObject) => ServerMessage>> = {
  subscribed: parseSubscribed,
  events: parseEvents,
  published: parsePublished,
  error: parseError,
  presence: parsePresence,
  gone: parseGone,
};

/**
 * Parse one decoded message that the server sent.
 *
 * @throws ProtocolError - `unknown_type` if it has no `type` a server may
 *   send; `invalid_message` or `invalid_offset` if a field is wrong.
 */
export function parseServerMessage(obj: unknown): ServerMessage {
  if (!isObject(obj)) throw invalid("a message must be a JSON object");
  const kind = obj["type"];
  const parse = typeof kind === "string" && Object.hasOwn(PARSERS, kind) ? PARSERS[kind] : undefined;
  if (parse === undefined) {
    const what = typeof kind === "string" ? shown(kind) : String(kind);
    throw new ProtocolError(`unknown message type from the server: ${what}`, ErrorCode.UNKNOWN_TYPE);
  }
  return parse(obj);
}
