// Threadline client (clients/typescript), bundled by `npm run ship`.
// Generated: do not edit. Change clients/typescript/src and rebuild.

// src/backoff.ts
var ExponentialBackoff = class {
  /** The first wait's upper bound, in milliseconds. */
  base;
  /** The longest wait, in milliseconds. */
  cap;
  random;
  /** @throws RangeError - unless `0 <= base <= cap`. */
  constructor(options = {}) {
    this.base = options.base ?? 100;
    this.cap = options.cap ?? 1e4;
    if (!(this.base >= 0 && this.cap >= this.base)) throw new RangeError("need 0 <= base <= cap");
    this.random = options.random ?? Math.random;
  }
  compute(failures) {
    const ceiling = Math.min(this.cap, this.base * 2 ** Math.min(failures, 32));
    return this.random() * ceiling;
  }
  reset() {
  }
};
var ConstantBackoff = class {
  /** The wait, in milliseconds. */
  delay;
  /** @throws RangeError - `delay` is negative. */
  constructor(delay) {
    if (!(delay >= 0)) throw new RangeError("delay must be >= 0");
    this.delay = delay;
  }
  compute(_failures) {
    return this.delay;
  }
  reset() {
  }
};

// src/errors.ts
var ThreadlineError = class extends Error {
  /** Machine-readable code, as sent on the wire. */
  code;
  /** Machine-readable context the server sent with the error, if any. */
  details;
  constructor(message, code = "error", details) {
    super(message);
    this.code = code;
    this.details = details;
  }
};
var ProtocolError = class extends ThreadlineError {
  constructor(message, code = "bad_request", details) {
    super(message, code, details);
  }
};
var InvalidOffset = class extends ProtocolError {
  constructor(message, details) {
    super(message, "invalid_offset", details);
  }
};
var InvalidEvent = class extends ProtocolError {
  /** Where the fault is, as a path into the event (`data.parts[1].url`). */
  field;
  constructor(message, field, details) {
    super(message, "invalid_event", details);
    this.field = field;
  }
};
var LogError = class extends ThreadlineError {
};
var OffsetGone = class extends LogError {
  /** The earliest offset still readable ("" if unknown). */
  earliest;
  /** The log's tail ("" if unknown). */
  tail;
  constructor(message, earliest = "", tail = "", details) {
    super(message, "offset_gone", details);
    this.earliest = earliest;
    this.tail = tail;
  }
};
var TailMismatch = class extends LogError {
  /** The tail as the server saw it ("" if unknown). */
  tail;
  constructor(message, tail = "", details) {
    super(message, "tail_mismatch", details);
    this.tail = tail;
  }
};
var SessionRuleError = class extends ThreadlineError {
  /** The HTTP status that answers this error. */
  status;
  constructor(message, code, status = 409, details) {
    super(message, code, details);
    this.status = status;
  }
};
var Forbidden = class extends SessionRuleError {
};
var SessionClosed = class extends SessionRuleError {
};
var NotInControl = class extends SessionRuleError {
};
var AlreadyAccepted = class extends SessionRuleError {
};
var SessionNotFound = class extends SessionRuleError {
};
var IdConflict = class extends SessionRuleError {
};
var EventTooLarge = class extends SessionRuleError {
};
var DeltaGap = class extends SessionRuleError {
  /** The seq the server expected (-1 if unknown). */
  expected;
  /** The seq it got (-1 if unknown). */
  received;
  constructor(message, expected = -1, received = -1, details) {
    super(message, "delta_gap", 409, details);
    this.expected = expected;
    this.received = received;
  }
};
var UnknownReference = class extends SessionRuleError {
  /** What kind of thing (`message`, `run`, …). */
  kind;
  constructor(message, code, details) {
    super(message, code, 409, details);
    this.kind = code.replace(/^unknown_/, "");
  }
};
var DuplicateReference = class extends SessionRuleError {
  /** What kind of thing (`message`, `run`, …). */
  kind;
  constructor(message, code, details) {
    super(message, code, 409, details);
    this.kind = code.replace(/^duplicate_/, "");
  }
};
var AlreadyEnded = class extends SessionRuleError {
  /** What ended (`message`, `run`). */
  kind;
  constructor(message, code, details) {
    super(message, code, 409, details);
    this.kind = code.replace(/_ended$/, "");
  }
};
var AuthError = class extends ThreadlineError {
  /** 401 or 403. */
  status;
  constructor(message, code = "unauthorized", status = 401) {
    super(message, code);
    this.status = status;
  }
};
var RateLimited = class extends ThreadlineError {
  /** Milliseconds to wait before trying again. */
  retryAfter;
  constructor(message, retryAfter = 1e3, details) {
    super(message, "rate_limited", details);
    this.retryAfter = retryAfter;
  }
};
var StorageError = class extends ThreadlineError {
};
var ConnectionClosed = class extends ThreadlineError {
  /** The close code (undefined if the connection never opened). */
  closeCode;
  /** The close reason. */
  reason;
  constructor(closeCode, reason) {
    super(
      closeCode === void 0 ? reason : `connection closed ${closeCode}${reason ? `: ${reason}` : ""}`,
      "connection_closed"
    );
    this.closeCode = closeCode;
    this.reason = reason;
  }
};
var ConnectionClosedOK = class extends ConnectionClosed {
};
var ConnectionClosedError = class extends ConnectionClosed {
};
var InvalidState = class extends ThreadlineError {
  constructor(message) {
    super(message, "invalid_state");
  }
};
var ConcurrencyError = class extends ThreadlineError {
  constructor(message) {
    super(message, "concurrency_error");
  }
};
var Timeout = class extends ThreadlineError {
  constructor(message) {
    super(message, "timeout");
  }
};
for (const [name, cls] of Object.entries({
  ThreadlineError,
  ProtocolError,
  InvalidOffset,
  InvalidEvent,
  LogError,
  OffsetGone,
  TailMismatch,
  SessionRuleError,
  Forbidden,
  SessionClosed,
  NotInControl,
  AlreadyAccepted,
  SessionNotFound,
  IdConflict,
  EventTooLarge,
  DeltaGap,
  UnknownReference,
  DuplicateReference,
  AlreadyEnded,
  AuthError,
  RateLimited,
  StorageError,
  ConnectionClosed,
  ConnectionClosedOK,
  ConnectionClosedError,
  InvalidState,
  ConcurrencyError,
  Timeout
})) {
  Object.defineProperty(cls.prototype, "name", { value: name, configurable: true, writable: true });
}
var AUTH_CODES = /* @__PURE__ */ new Set([
  "unauthorized",
  "missing_token",
  "invalid_token",
  "token_expired"
]);
var RULES = {
  forbidden: [Forbidden, 403],
  session_not_found: [SessionNotFound, 404],
  not_found: [SessionNotFound, 404],
  id_conflict: [IdConflict, 409],
  event_too_large: [EventTooLarge, 413],
  session_closed: [SessionClosed, 409],
  not_in_control: [NotInControl, 409],
  already_accepted: [AlreadyAccepted, 409]
};
function str(value) {
  return typeof value === "string" ? value : "";
}
function int(value) {
  return typeof value === "number" && Number.isInteger(value) ? value : -1;
}
function errorFrom(code, message, details) {
  const d = details ?? {};
  const status = typeof d["status"] === "number" ? d["status"] : void 0;
  if (status === 401 || AUTH_CODES.has(code)) {
    return new AuthError(message, code, status ?? 401);
  }
  const rule = RULES[code];
  if (rule !== void 0) {
    return new rule[0](message, code, status ?? rule[1], details);
  }
  switch (code) {
    case "invalid_offset":
      return new InvalidOffset(message, details);
    case "storage_error":
      return new StorageError(message, code, details);
    case "delta_gap":
      return new DeltaGap(message, int(d["expected"]), int(d["received"]), details);
    case "offset_gone":
      return new OffsetGone(message, str(d["earliest"]), str(d["tail"]), details);
    case "tail_mismatch":
      return new TailMismatch(message, str(d["offset"] ?? d["tail"]), details);
    case "rate_limited": {
      const seconds = d["retry_after"];
      return new RateLimited(
        message,
        typeof seconds === "number" ? seconds * 1e3 : 1e3,
        details
      );
    }
    case "invalid_event":
      return new InvalidEvent(message, typeof d["field"] === "string" ? d["field"] : void 0, details);
  }
  if (code.startsWith("unknown_")) return new UnknownReference(message, code, details);
  if (code.startsWith("duplicate_")) return new DuplicateReference(message, code, details);
  if (code.endsWith("_ended")) return new AlreadyEnded(message, code, details);
  if (status !== void 0 && status >= 500) return new ThreadlineError(message, code, details);
  return new ProtocolError(message, code, details);
}

// src/ids.ts
var lastMs = 0;
var lastCounter = 0;
function random(bytes) {
  return globalThis.crypto.getRandomValues(new Uint8Array(bytes));
}
function hex(bytes) {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
function uuid7() {
  const now = Date.now();
  if (now > lastMs) {
    const seed = random(2);
    lastMs = now;
    lastCounter = (seed[0] << 8 | seed[1]) & 2047;
  } else if (lastCounter < 4095) {
    lastCounter += 1;
  } else {
    lastMs += 1;
    lastCounter = 0;
  }
  const bytes = new Uint8Array(16);
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = 112 | lastCounter >> 8;
  bytes[7] = lastCounter & 255;
  bytes.set(random(8), 8);
  bytes[8] = 128 | bytes[8] & 63;
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// src/protocol/types.ts
var CloseCode = {
  /** The client closed the connection; no reconnect. */
  NORMAL_CLOSURE: 1e3,
  /** The send queue filled: reconnect and resume from your offsets. */
  SLOW_CONSUMER: 4e3,
  /** The token expired without a refresh: get a fresh token and reconnect. */
  TOKEN_EXPIRED: 4001,
  /** The server is restarting: reconnect. */
  SERVER_RESTARTING: 4002,
  /** No hello first, or a missing, forged, expired or malformed token: stop. */
  UNAUTHORIZED: 4401,
  /** The token may not use this connection: stop. */
  FORBIDDEN: 4403,
  /** No hello within the hello timeout: stop. */
  HELLO_TIMEOUT: 4408,
  /** A malformed frame, or a second hello: stop. */
  PROTOCOL_ERROR: 4409,
  /** A frame over the byte or message limit: stop. */
  FRAME_TOO_LARGE: 4413
};

// src/protocol/codes.ts
var TERMINAL_STANDARD = /* @__PURE__ */ new Set([1e3, 1002, 1003, 1007, 1008, 1009, 1010]);
var MAX_REASON_BYTES = 123;
function isRetryable(code) {
  if (code >= 4e3 && code < 4100 || code >= 4900 && code < 4950) return true;
  if (code >= 4400 && code < 4500 || code >= 4950 && code < 5e3) return false;
  return !TERMINAL_STANDARD.has(code);
}
var ErrorCode = {
  /** A frame is not JSON, not an array, or empty (closes 4409). */
  INVALID_FRAME: "invalid_frame",
  /** A frame exceeds the byte limit (closes 4413). */
  FRAME_TOO_LARGE: "frame_too_large",
  /** A frame holds more messages than the limit (closes 4413). */
  TOO_MANY_MESSAGES: "too_many_messages",
  /** A message has a missing, unknown or mistyped field, or a bad value. */
  INVALID_MESSAGE: "invalid_message",
  /** A message's `type` is not one this side accepts. */
  UNKNOWN_TYPE: "unknown_type",
  /** An offset is malformed. */
  INVALID_OFFSET: "invalid_offset",
  /** A request reuses the `rid` of a request still in flight. */
  DUPLICATE_RID: "duplicate_rid",
  /** The connection is already subscribed to that session. */
  ALREADY_SUBSCRIBED: "already_subscribed",
  /** The connection holds as many subscriptions as the limit allows. */
  TOO_MANY_SUBSCRIPTIONS: "too_many_subscriptions"
};
var Close = class _Close {
  /** The close code: a {@link CloseCode}, or an application code. */
  code;
  /** A short human-readable reason (at most 123 bytes of UTF-8). */
  reason;
  constructor(code, reason = "") {
    if (!(code === 1e3 || code >= 3e3 && code <= 4999) || !Number.isInteger(code)) {
      throw new RangeError(`cannot send close code ${code}`);
    }
    if (new TextEncoder().encode(reason).length > MAX_REASON_BYTES) {
      throw new RangeError("close reason longer than 123 bytes");
    }
    this.code = code;
    this.reason = reason;
  }
  /** A close whose reason is cut to fit the 123-byte limit. */
  static truncated(code, reason) {
    const bytes = new TextEncoder().encode(reason).slice(0, MAX_REASON_BYTES);
    return new _Close(code, new TextDecoder("utf-8", { fatal: false }).decode(bytes).replace(/\uFFFD$/, ""));
  }
  /** Whether the client should reconnect after this close. */
  get retryable() {
    return isRetryable(this.code);
  }
};

// src/protocol/frames.ts
var SUBPROTOCOL = "threadline.v1";
var DEFAULT_MAX_FRAME_BYTES = 2 * 1024 * 1024;
var DEFAULT_MAX_MESSAGES = 256;
function finite(_key, value) {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new RangeError(`${value} is not JSON`);
  }
  if (typeof value === "bigint") {
    throw new TypeError("a bigint is not JSON");
  }
  return value;
}
function encodeJson(value) {
  return JSON.stringify(value, finite);
}
function utf8Size(text) {
  let size = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) continue;
    if (c < 2048) {
      size += 1;
    } else if (c >= 55296 && c <= 56319 && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 56320 && next <= 57343) {
        size += 2;
        i++;
      } else {
        size += 2;
      }
    } else {
      size += 2;
    }
  }
  return size;
}
function hasLoneSurrogate(text) {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 55296 && c <= 56319) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (next < 56320 || next > 57343) return true;
      i++;
    } else if (c >= 56320 && c <= 57343) {
      return true;
    }
  }
  return false;
}
function hasLoneSurrogateIn(value) {
  if (typeof value === "string") return hasLoneSurrogate(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogateIn);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).some(
      ([key, item]) => hasLoneSurrogate(key) || hasLoneSurrogateIn(item)
    );
  }
  return false;
}
var SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
function decodeFrame(text, limits = { maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, maxMessages: DEFAULT_MAX_MESSAGES }) {
  if (utf8Size(text) > limits.maxFrameBytes) {
    throw new ProtocolError(`frame larger than ${limits.maxFrameBytes} bytes`, ErrorCode.FRAME_TOO_LARGE);
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (exc) {
    throw new ProtocolError(`frame is not JSON (${String(exc)})`, ErrorCode.INVALID_FRAME);
  }
  if (SURROGATE_ESCAPE.test(text) && hasLoneSurrogateIn(value)) {
    throw new ProtocolError("frame holds a lone surrogate", ErrorCode.INVALID_FRAME);
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new ProtocolError("frame must be a non-empty JSON array", ErrorCode.INVALID_FRAME);
  }
  if (value.length > limits.maxMessages) {
    throw new ProtocolError(
      `frame holds more than ${limits.maxMessages} messages`,
      ErrorCode.TOO_MANY_MESSAGES
    );
  }
  return value;
}
var Outbox = class {
  limits;
  items = [];
  constructor(limits) {
    this.limits = limits;
  }
  /** Queue one encoded message. */
  add(text) {
    this.items.push({ text, size: utf8Size(text) });
  }
  /** Drop everything waiting. */
  clear() {
    this.items = [];
  }
  /** Pack everything waiting into frames, and empty the outbox. */
  frames() {
    const frames = [];
    let parts = [];
    let size = 2;
    for (const item of this.items) {
      if (parts.length > 0 && !this.fits(size + 1 + item.size, parts.length)) {
        frames.push(`[${parts.join(",")}]`);
        parts = [];
        size = 2;
      }
      size += item.size + (parts.length > 0 ? 1 : 0);
      parts.push(item.text);
    }
    if (parts.length > 0) frames.push(`[${parts.join(",")}]`);
    this.clear();
    return frames;
  }
  fits(size, count) {
    return size <= this.limits.maxFrameBytes && count < this.limits.maxMessages;
  }
};

// src/protocol/messages.ts
var RID = /^[A-Za-z0-9._:-]{1,64}$/;
var SESSION = /^[A-Za-z0-9._:-]{1,128}$/;
var DEVICE = /^[A-Za-z0-9_-]{1,64}$/;
var CODE = /^[a-z][a-z0-9_]{0,63}$/;
var OFFSET = /^[0-9]{16}_[0-9]{16}$/;
var VIEWS = ["raw", "compact"];
var STATUSES = ["active", "idle", "typing"];
var GONE_REASONS = ["deleted", "forbidden", "offset_gone"];
var ROLES = ["customer", "ai", "agent", "supervisor", "service", "server"];
var START = "-1";
var NOW = "now";
var MAX_TOKEN = 16384;
var SERVER_TYPES = /* @__PURE__ */ new Set([
  "subscribed",
  "events",
  "published",
  "error",
  "presence",
  "gone"
]);
function invalid(message) {
  return new ProtocolError(message, ErrorCode.INVALID_MESSAGE);
}
function shown(value) {
  return JSON.stringify(value.slice(0, 64));
}
function match(pattern, value, what) {
  if (!pattern.test(value)) throw invalid(`${what} is malformed: ${shown(value)}`);
}
function checkOffset(value, what) {
  if (!OFFSET.test(value)) throw new InvalidOffset(`${what} is malformed: ${shown(value)}`);
}
function checkOffsetParam(value, what) {
  if (value !== START && value !== NOW) checkOffset(value, what);
}
function checkChoice(value, choices, what) {
  if (!choices.includes(value)) throw invalid(`${what} must be one of ${choices.join(", ")}`);
}
function checkToken(value, what) {
  if (!(value.length > 0 && value.length <= MAX_TOKEN)) {
    throw invalid(`${what} must be 1 to ${MAX_TOKEN} characters`);
  }
}
function checkClientMessage(message) {
  switch (message.type) {
    case "hello":
      checkToken(message.token, "hello.token");
      if (message.device !== void 0) match(DEVICE, message.device, "hello.device");
      return;
    case "subscribe":
      match(RID, message.rid, "subscribe.rid");
      match(SESSION, message.session, "subscribe.session");
      checkOffsetParam(message.offset, "subscribe.offset");
      checkChoice(message.view, VIEWS, "subscribe.view");
      return;
    case "unsubscribe":
      if (message.rid !== void 0) match(RID, message.rid, "unsubscribe.rid");
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
      if (message.expected_offset !== void 0) {
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
function encodeMessage(message) {
  let ordered;
  switch (message.type) {
    case "hello":
      ordered = { type: "hello", token: message.token };
      if (message.device !== void 0) ordered["device"] = message.device;
      break;
    case "subscribe":
      ordered = {
        type: "subscribe",
        rid: message.rid,
        session: message.session,
        offset: message.offset,
        view: message.view
      };
      break;
    case "unsubscribe":
      ordered = message.rid === void 0 ? { type: "unsubscribe", session: message.session } : { type: "unsubscribe", rid: message.rid, session: message.session };
      break;
    case "publish":
      ordered = { type: "publish", rid: message.rid, session: message.session, events: message.events };
      if (message.expected_offset !== void 0) ordered["expected_offset"] = message.expected_offset;
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
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
function required(obj, name, keys) {
  for (const key of keys) {
    if (!(key in obj)) throw invalid(`${name}: missing field ${JSON.stringify(key)}`);
  }
}
function readStr(obj, key, name) {
  const value = obj[key];
  if (typeof value !== "string") throw invalid(`${name}.${key} must be a string`);
  return value;
}
function readObject(obj, key, name) {
  const value = obj[key];
  if (!isObject(value)) throw invalid(`${name}.${key} must be an object`);
  return value;
}
function readObjects(obj, key, name) {
  const value = obj[key];
  if (!Array.isArray(value) || !value.every(isObject)) {
    throw invalid(`${name}.${key} must be an array of objects`);
  }
  return value;
}
function checkActor(actor, what) {
  const id = actor["id"];
  if (typeof id !== "string" || id.length === 0) throw invalid(`${what}.id must be a non-empty string`);
  const role = actor["role"];
  if (typeof role !== "string") throw invalid(`${what}.role must be a string`);
  checkChoice(role, ROLES, `${what}.role`);
}
function parseSubscribed(obj) {
  required(obj, "subscribed", ["rid", "session", "offset", "state"]);
  const message = {
    type: "subscribed",
    rid: readStr(obj, "rid", "subscribed"),
    session: readStr(obj, "session", "subscribed"),
    offset: readStr(obj, "offset", "subscribed"),
    state: readObject(obj, "state", "subscribed")
  };
  match(RID, message.rid, "subscribed.rid");
  match(SESSION, message.session, "subscribed.session");
  checkOffset(message.offset, "subscribed.offset");
  return message;
}
function parseEvents(obj) {
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
  return { type: "events", session, events };
}
function parsePublished(obj) {
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
function parseError(obj) {
  required(obj, "error", ["code", "message"]);
  const message = {
    type: "error",
    code: readStr(obj, "code", "error"),
    message: readStr(obj, "message", "error")
  };
  if ("rid" in obj) {
    message.rid = readStr(obj, "rid", "error");
    match(RID, message.rid, "error.rid");
  }
  if ("details" in obj) message.details = readObject(obj, "details", "error");
  match(CODE, message.code, "error.code");
  const { type, rid, code, message: text, details } = message;
  return {
    type,
    ...rid === void 0 ? {} : { rid },
    code,
    message: text,
    ...details === void 0 ? {} : { details }
  };
}
function parsePresence(obj) {
  required(obj, "presence", ["session", "actor", "status"]);
  const session = readStr(obj, "session", "presence");
  const actor = readObject(obj, "actor", "presence");
  const status = readStr(obj, "status", "presence");
  match(SESSION, session, "presence.session");
  checkActor(actor, "presence.actor");
  checkChoice(status, [...STATUSES, "offline"], "presence.status");
  return { type: "presence", session, actor, status };
}
function parseGone(obj) {
  required(obj, "gone", ["session", "reason"]);
  const reason = readStr(obj, "reason", "gone");
  checkChoice(reason, GONE_REASONS, "gone.reason");
  const message = { type: "gone", session: readStr(obj, "session", "gone"), reason };
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
var PARSERS = {
  subscribed: parseSubscribed,
  events: parseEvents,
  published: parsePublished,
  error: parseError,
  presence: parsePresence,
  gone: parseGone
};
function parseServerMessage(obj) {
  if (!isObject(obj)) throw invalid("a message must be a JSON object");
  const kind = obj["type"];
  const parse = typeof kind === "string" && Object.hasOwn(PARSERS, kind) ? PARSERS[kind] : void 0;
  if (parse === void 0) {
    const what = typeof kind === "string" ? shown(kind) : String(kind);
    throw new ProtocolError(`unknown message type from the server: ${what}`, ErrorCode.UNKNOWN_TYPE);
  }
  return parse(obj);
}

// src/protocol/client_protocol.ts
function checked(message) {
  try {
    checkClientMessage(message);
  } catch (exc) {
    if (exc instanceof ProtocolError) throw new RangeError(exc.message);
    throw exc;
  }
  return message;
}
var ClientProtocol = class {
  /** The token the next `hello` sends ({@link refresh} replaces it). */
  token;
  /** The device id sent in `hello`. */
  device;
  /** `open` between {@link connect} and the end of that connection. */
  state = "closed";
  limits;
  events = [];
  outbox;
  closing;
  lastRid = 0;
  subs = /* @__PURE__ */ new Map();
  subRids = /* @__PURE__ */ new Map();
  // rid → session
  publishes = /* @__PURE__ */ new Map();
  // rid → its JSON text
  unsent = /* @__PURE__ */ new Map();
  // type + session → latest
  /** @throws RangeError - `token` or `device` is malformed. */
  constructor(options = {}) {
    if (options.token !== void 0) checked({ type: "refresh", token: options.token });
    if (options.device !== void 0) {
      checked({ type: "hello", token: "-", device: options.device });
    }
    this.token = options.token;
    this.device = options.device;
    this.limits = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      maxMessages: options.maxMessages ?? DEFAULT_MAX_MESSAGES
    };
    this.outbox = new Outbox(this.limits);
  }
  // Public attributes
  /** Each subscribed session's resume offset (the last offset received). */
  get subscriptions() {
    const out = {};
    for (const [session, sub] of this.subs) out[session] = sub.offset;
    return out;
  }
  /** The `rid` of each publish not answered yet. */
  get pendingPublishes() {
    return [...this.publishes.keys()];
  }
  // Connection
  /**
   * Start a new connection: hello, resubscribe, resend what is pending.
   *
   * @throws Error - the current connection is still open, or there is no token.
   */
  connect() {
    if (this.state === "open") throw new Error("connect() while connected");
    if (this.token === void 0) throw new Error("connect() without a token");
    this.state = "open";
    this.closing = void 0;
    this.outbox.clear();
    const hello = this.device === void 0 ? { type: "hello", token: this.token } : { type: "hello", token: this.token, device: this.device };
    this.outbox.add(encodeMessage(hello));
    for (const [session, sub] of this.subs) {
      this.outbox.add(
        encodeMessage({ type: "subscribe", rid: sub.rid, session, offset: sub.offset, view: sub.view })
      );
    }
    for (const text of this.publishes.values()) this.outbox.add(text);
    for (const message of this.unsent.values()) this.outbox.add(encodeMessage(message));
    this.unsent.clear();
  }
  /**
   * Handle a text frame from the server; a bad one closes 4409 or 4413.
   *
   * Messages of types this version does not know are skipped: a newer server
   * may send them.
   */
  receiveText(text) {
    if (this.state !== "open") return;
    let messages;
    try {
      const items = decodeFrame(text, this.limits);
      messages = items.filter((item) => !unknown(item)).map(parseServerMessage);
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      this.outbox.clear();
      this.state = "closed";
      this.closing = Close.truncated(
        exc.code === ErrorCode.FRAME_TOO_LARGE || exc.code === ErrorCode.TOO_MANY_MESSAGES ? CloseCode.FRAME_TOO_LARGE : CloseCode.PROTOCOL_ERROR,
        exc.message
      );
      return;
    }
    for (const message of messages) this.receive(message);
  }
  /**
   * Record that the connection closed with `code`; return whether to reconnect.
   *
   * After a terminal close the pending publishes are dropped (they failed);
   * subscriptions are kept, for a `connect()` that the application may still
   * decide on (say, with a new token).
   */
  receiveClose(code, _reason = "") {
    this.state = "closed";
    this.outbox.clear();
    this.closing = void 0;
    const retryable = isRetryable(code);
    if (!retryable) this.publishes.clear();
    return retryable;
  }
  /** Close the connection normally (1000) after what is queued. */
  close() {
    if (this.state === "open") {
      this.state = "closed";
      this.closing = new Close(CloseCode.NORMAL_CLOSURE);
    }
  }
  /**
   * The server's messages since the last call: answers to this client's
   * requests, new events (each once), presence, gone, errors.
   */
  eventsReceived() {
    const events = this.events;
    this.events = [];
    return events;
  }
  /** Frames to send, in order, then perhaps the close to send after them. */
  dataToSend() {
    const out = this.outbox.frames();
    if (this.closing !== void 0) {
      out.push(this.closing);
      this.closing = void 0;
    }
    return out;
  }
  // Requests
  /**
   * Subscribe to a session's events after `offset`; return the `rid`.
   *
   * @throws RangeError - already subscribed, or a value is malformed.
   */
  subscribe(session, offset = START, view = "raw") {
    if (this.subs.has(session)) throw new RangeError(`already subscribed to ${JSON.stringify(session)}`);
    const message = checked({ type: "subscribe", rid: this.nextRid(), session, offset, view });
    this.subs.set(session, { rid: message.rid, offset, view });
    this.subRids.set(message.rid, session);
    this.send(message);
    return message.rid;
  }
  /** Stop a subscription (if there is one). */
  unsubscribe(session) {
    const sub = this.subs.get(session);
    if (sub !== void 0) {
      this.subs.delete(session);
      this.subRids.delete(sub.rid);
      this.send({ type: "unsubscribe", session });
    }
  }
  /**
   * Publish event drafts, all or nothing; return the `rid`.
   *
   * @throws RangeError - a value is malformed, an event holds NaN, or the
   *   publish does not fit in one frame.
   */
  publish(session, events, options = {}) {
    const message = checked({
      type: "publish",
      rid: this.nextRid(),
      session,
      events: [...events],
      ...options.expectedOffset === void 0 ? {} : { expected_offset: options.expectedOffset }
    });
    const text = encodeMessage(message);
    if (utf8Size(text) + 2 > this.limits.maxFrameBytes) {
      throw new RangeError(`publish larger than a frame (${this.limits.maxFrameBytes} bytes)`);
    }
    this.publishes.set(message.rid, text);
    if (this.state === "open") this.outbox.add(text);
    return message.rid;
  }
  /**
   * Move this participant's read cursor in `session` to `offset`.
   *
   * @throws RangeError - a value is malformed.
   */
  sendCursor(session, offset) {
    this.sendLatest(checked({ type: "cursor", session, offset }));
  }
  /**
   * Set this device's presence status in `session`.
   *
   * @throws RangeError - a value is malformed.
   */
  sendPresence(session, status) {
    this.sendLatest(checked({ type: "presence", session, status }));
  }
  /**
   * Replace the token, on this connection and for later hellos.
   *
   * @throws RangeError - `token` is malformed.
   */
  refresh(token) {
    const message = checked({ type: "refresh", token });
    this.token = token;
    if (this.state === "open") this.outbox.add(encodeMessage(message));
  }
  // Private methods
  nextRid() {
    this.lastRid += 1;
    return String(this.lastRid);
  }
  send(message) {
    if (this.state === "open") this.outbox.add(encodeMessage(message));
  }
  sendLatest(message) {
    if (this.state === "open") {
      this.outbox.add(encodeMessage(message));
    } else {
      this.unsent.set(`${message.type}
${message.session}`, message);
    }
  }
  receive(message) {
    switch (message.type) {
      case "events":
        this.receiveEvents(message);
        return;
      case "subscribed": {
        const sub = this.subs.get(message.session);
        if (sub !== void 0 && sub.rid === message.rid) {
          if (sub.offset === START || sub.offset === NOW || message.offset > sub.offset) {
            sub.offset = message.offset;
          }
          this.events.push(message);
        }
        return;
      }
      case "published":
        if (this.publishes.delete(message.rid)) this.events.push(message);
        return;
      case "error":
        if (message.rid !== void 0) {
          this.publishes.delete(message.rid);
          const session = this.subRids.get(message.rid);
          if (session !== void 0) {
            this.subRids.delete(message.rid);
            this.subs.delete(session);
          }
        }
        this.events.push(message);
        return;
      case "presence":
        if (this.subs.has(message.session)) this.events.push(message);
        return;
      case "gone": {
        const sub = this.subs.get(message.session);
        if (sub !== void 0) {
          this.subs.delete(message.session);
          this.subRids.delete(sub.rid);
          this.events.push(message);
        }
        return;
      }
    }
  }
  receiveEvents(message) {
    const sub = this.subs.get(message.session);
    if (sub === void 0) return;
    let last = sub.offset;
    const fresh = [];
    for (const event of message.events) {
      if (last === START || last === NOW || event.offset > last) {
        fresh.push(event);
        last = event.offset;
      }
    }
    if (fresh.length > 0) {
      sub.offset = last;
      this.events.push({ type: "events", session: message.session, events: fresh });
    }
  }
};
function unknown(item) {
  if (item === null || typeof item !== "object" || Array.isArray(item)) return false;
  const type = item["type"];
  return typeof type === "string" && !SERVER_TYPES.has(type);
}

// src/transports.ts
var OPEN = 1;
function globalWebSocket() {
  const impl = globalThis.WebSocket;
  if (typeof impl !== "function") {
    throw new InvalidState(
      "this platform has no global WebSocket: pass WebSocketImpl (e.g. the ws package's), or run Node 20 with --experimental-websocket"
    );
  }
  return impl;
}
var RETRY_STATUSES = /* @__PURE__ */ new Set([429, 502, 503, 504]);
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
var HttpApi = class {
  baseUrl;
  tokens;
  options;
  constructor(baseUrl, tokens, options) {
    this.baseUrl = baseUrl;
    this.tokens = tokens;
    this.options = options;
  }
  /**
   * Send a request and decode its JSON answer, retrying what may pass.
   *
   * @throws Timeout - no answer before the deadline.
   * @throws ThreadlineError - the server's error answer.
   */
  async request(method, path, body) {
    const fetcher = this.options.fetch ?? globalThis.fetch;
    if (typeof fetcher !== "function") throw new InvalidState("this platform has no fetch");
    const deadline = Date.now() + this.options.timeout;
    let failures = 0;
    let refreshed = false;
    for (; ; ) {
      const token = await this.tokens.current();
      const headers = { authorization: `Bearer ${token}` };
      if (this.options.device !== void 0) headers["threadline-device"] = this.options.device;
      if (body !== void 0) headers["content-type"] = "application/json";
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
      let error;
      let retryAfter = 0;
      try {
        const response = await fetcher(this.baseUrl + path, {
          method,
          headers,
          signal: controller.signal,
          ...body === void 0 ? {} : { body: JSON.stringify(body) }
        });
        const text = await response.text();
        if (response.ok) return text ? JSON.parse(text) : void 0;
        error = httpError(response.status, text);
        if (response.status === 401 && !refreshed) {
          refreshed = true;
          if (await this.tokens.refresh(token)) continue;
        }
        if (!RETRY_STATUSES.has(response.status)) throw error;
        retryAfter = Number(response.headers.get("retry-after") ?? 0) * 1e3 || 0;
      } catch (exc) {
        if (exc instanceof ThreadlineError) throw exc;
        if (controller.signal.aborted) throw new Timeout(`${method} ${path}: no answer in time`);
        error = new ThreadlineError(`${method} ${path}: ${String(exc)}`, "disconnected");
      } finally {
        clearTimeout(timer);
      }
      failures += 1;
      const delay = Math.max(this.options.backoff.compute(failures), retryAfter);
      if (Date.now() + delay >= deadline) throw new Timeout(`${method} ${path}: ${error.message}`);
      await sleep(delay);
    }
  }
};
function httpError(status, text) {
  let code = `http_${status}`;
  let message = `HTTP ${status}`;
  let details = {};
  try {
    const error = JSON.parse(text).error;
    if (error !== void 0 && typeof error["code"] === "string" && typeof error["message"] === "string") {
      ({ code, message, ...details } = error);
    }
  } catch {
  }
  if (status === 401) return new AuthError(message, code, 401);
  return errorFrom(code, message, { ...details, status });
}

// src/websocket.ts
var CLOSE_TIMEOUT = 5e3;
var Deferred = class {
  promise;
  resolve;
  reject;
  settled = false;
  constructor() {
    this.promise = new Promise((resolve, reject) => {
      this.resolve = (value) => {
        this.settled = true;
        resolve(value);
      };
      this.reject = (error) => {
        this.settled = true;
        reject(error);
      };
    });
    this.promise.catch(() => void 0);
  }
};
var WebSocketTransport = class {
  /** The WebSocket URL, `ws(s)://host:port/v1/ws`. */
  url;
  /** The sans-I/O state: subscriptions' offsets, unanswered publishes. */
  protocol;
  /** How many connections were opened so far (the first one included). */
  connections = 0;
  /** Where the connection stands now (see {@link ConnectionState}). */
  state = "idle";
  tokens;
  options;
  sinks = /* @__PURE__ */ new Map();
  // session → sink
  sinkRids = /* @__PURE__ */ new Map();
  // subscribe rid → session
  subscribing = /* @__PURE__ */ new Map();
  // rid → answer
  publishes = /* @__PURE__ */ new Map();
  // rid → answer
  presenceListeners = /* @__PURE__ */ new Map();
  errorListeners = /* @__PURE__ */ new Set();
  connectionListeners = /* @__PURE__ */ new Set();
  socket;
  running = false;
  closing = false;
  error;
  failures = 0;
  retriedAuth = false;
  timer;
  flushing = false;
  stopped = new Deferred();
  constructor(url, tokens, options) {
    this.url = url;
    this.tokens = tokens;
    this.options = options;
    this.protocol = new ClientProtocol({
      ...tokens.token === void 0 ? {} : { token: tokens.token },
      ...options.device === void 0 ? {} : { device: options.device }
    });
  }
  // Subscriptions
  /**
   * Start delivering a session's events to `sink`; resolve once the server
   * accepted the subscription.
   *
   * @throws InvalidState - the client is closed, or already subscribes to the session.
   * @throws ThreadlineError - the server refused (`SessionNotFound`, `Forbidden`, `AuthError`…).
   * @throws Timeout - no answer within the timeout.
   */
  async subscribe(sink) {
    this.start();
    if (this.sinks.has(sink.session)) {
      throw new InvalidState(`already subscribed to ${JSON.stringify(sink.session)} on this client`);
    }
    const rid = this.protocol.subscribe(sink.session, sink.resumeOffset(), sink.view);
    this.sinks.set(sink.session, sink);
    this.sinkRids.set(rid, sink.session);
    const answer = new Deferred();
    this.subscribing.set(rid, answer);
    this.flush();
    try {
      await withTimeout(answer.promise, this.options.timeout, () => {
        return new Timeout(`no answer to subscribe ${JSON.stringify(sink.session)}`);
      });
    } catch (exc) {
      this.subscribing.delete(rid);
      this.unsubscribe(sink);
      throw exc;
    }
  }
  /** Stop delivering to `sink` (nothing if it is not subscribed). */
  unsubscribe(sink) {
    if (this.sinks.get(sink.session) === sink) {
      this.sinks.delete(sink.session);
      this.forgetRids(sink.session);
      this.protocol.unsubscribe(sink.session);
      this.flush();
    }
  }
  /**
   * Stop reading `sink`'s session on the server, keeping the sink: its
   * consumer is behind. {@link resume} subscribes again from the sink's
   * resume offset, so nothing is lost.
   */
  pause(sink) {
    if (this.sinks.get(sink.session) === sink) {
      this.forgetRids(sink.session);
      this.protocol.unsubscribe(sink.session);
      this.flush();
    }
  }
  /** Read a paused sink's session again, after the last event it was given. */
  resume(sink) {
    if (this.sinks.get(sink.session) === sink && !(sink.session in this.protocol.subscriptions)) {
      const rid = this.protocol.subscribe(sink.session, sink.resumeOffset(), sink.view);
      this.sinkRids.set(rid, sink.session);
      this.flush();
    }
  }
  // Publishing, cursors, presence
  /**
   * Publish event drafts, all or nothing; resolve to their offsets.
   *
   * The publish is queued when this returns, behind those submitted before,
   * and resent after a reconnect until it is answered.
   *
   * @throws RangeError - a value is malformed (thrown, not rejected).
   */
  submit(session, events, expectedOffset) {
    this.start();
    const rid = this.protocol.publish(
      session,
      events,
      expectedOffset === void 0 ? {} : { expectedOffset }
    );
    const answer = new Deferred();
    this.publishes.set(rid, answer);
    this.flush();
    return answer.promise;
  }
  /** Move the caller's read cursor (no answer; a failure goes to the error listeners). */
  cursor(session, offset) {
    this.start();
    this.protocol.sendCursor(session, offset);
    this.flush();
  }
  /** Set this device's presence status (no answer; a failure goes to the error listeners). */
  presence(session, status) {
    this.start();
    this.protocol.sendPresence(session, status);
    this.flush();
  }
  /** Call `listener` for each presence change in `session` (while subscribed); return its remover. */
  addPresenceListener(session, listener) {
    let listeners = this.presenceListeners.get(session);
    if (listeners === void 0) {
      listeners = /* @__PURE__ */ new Set();
      this.presenceListeners.set(session, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.presenceListeners.get(session) === listeners) {
        this.presenceListeners.delete(session);
      }
    };
  }
  /** Call `listener` for each server error that answers no request; return its remover. */
  addErrorListener(listener) {
    this.errorListeners.add(listener);
    return () => {
      this.errorListeners.delete(listener);
    };
  }
  /**
   * Call `listener` with each change of the connection's state (`connecting`,
   * `live`, `reconnecting`, `closed`), for a status indicator.
   *
   * @returns A function that removes the listener.
   */
  addConnectionListener(listener) {
    this.connectionListeners.add(listener);
    return () => {
      this.connectionListeners.delete(listener);
    };
  }
  /** The token was replaced: send `refresh` (and use it for later hellos). */
  onToken(token) {
    try {
      this.protocol.refresh(token);
    } catch (exc) {
      console.warn("threadline: cannot send the new token:", exc);
      return;
    }
    this.flush();
  }
  /**
   * Close: end every subscription cleanly, fail what is unanswered with
   * {@link ConnectionClosedOK}, close the WebSocket (1000) after what is
   * queued. Safe to call twice.
   */
  async close() {
    if (this.closing) return this.stopped.promise;
    this.closing = true;
    if (this.timer !== void 0) clearTimeout(this.timer);
    this.timer = void 0;
    const socket = this.socket;
    if (socket !== void 0 && this.protocol.state === "open" && socket.readyState === OPEN) {
      this.protocol.close();
      this.write(socket);
      await withTimeout(this.stopped.promise, CLOSE_TIMEOUT, () => void 0).catch(() => void 0);
    } else if (socket !== void 0) {
      this.socket = void 0;
      closeQuietly(socket);
    }
    this.end(void 0);
    return this.stopped.promise;
  }
  /**
   * Open the connection now rather than on first use (and keep it open, as
   * after any use). Safe to call again.
   *
   * @throws InvalidState - the client is closed.
   * @throws ThreadlineError - the connection failed for good.
   */
  connect() {
    this.start();
  }
  // The connection loop
  start() {
    if (this.error !== void 0) throw this.error;
    if (this.closing) throw new InvalidState("the client is closed");
    if (!this.running) {
      this.running = true;
      void this.open();
    }
  }
  async open() {
    this.timer = void 0;
    if (this.closing || this.error !== void 0) return;
    if (this.state === "idle") this.changeState("connecting");
    let token;
    try {
      token = await this.tokens.current();
    } catch (exc) {
      this.end(exc instanceof ThreadlineError ? exc : new AuthError(String(exc)));
      return;
    }
    if (this.closing || this.error !== void 0) return;
    if (this.protocol.token !== token) this.protocol.refresh(token);
    let socket;
    try {
      socket = new this.options.WebSocketImpl(this.url, SUBPROTOCOL);
    } catch (exc) {
      this.end(new ConnectionClosedError(void 0, `cannot open ${this.url}: ${String(exc)}`));
      return;
    }
    this.socket = socket;
    let opened = false;
    let answered = false;
    let stale = token;
    socket.onopen = () => {
      if (this.closing) {
        closeQuietly(socket);
        return;
      }
      if (socket.protocol !== SUBPROTOCOL) {
        closeQuietly(socket);
        this.end(new ConnectionClosedError(void 0, `the server does not speak ${SUBPROTOCOL}`));
        return;
      }
      opened = true;
      this.failures = 0;
      this.options.backoff.reset();
      this.connections += 1;
      stale = this.protocol.token ?? token;
      this.protocol.connect();
      this.write(socket);
      this.changeState("live");
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      if (typeof event.data !== "string") {
        socket.close(CloseCode.PROTOCOL_ERROR, "binary frame");
        return;
      }
      answered = true;
      this.protocol.receiveText(event.data);
      this.dispatch(this.protocol.eventsReceived());
      this.write(socket);
    };
    socket.onerror = () => void 0;
    socket.onclose = (event) => {
      if (this.socket === socket) this.socket = void 0;
      if (this.closing) {
        this.stopped.resolve();
        return;
      }
      if (this.error !== void 0) return;
      if (!opened) {
        this.failures += 1;
        this.reconnect(this.options.backoff.compute(this.failures));
        return;
      }
      void this.closed(event.code, event.reason, answered, stale);
    };
  }
  async closed(code, reason, answered, stale) {
    if (answered) this.retriedAuth = false;
    if (code === CloseCode.TOKEN_EXPIRED || code === CloseCode.UNAUTHORIZED && !this.retriedAuth) {
      let fresh;
      try {
        fresh = await this.tokens.refresh(stale);
      } catch (exc) {
        this.protocol.receiveClose(code, reason);
        this.end(exc instanceof ThreadlineError ? exc : new AuthError(String(exc)));
        return;
      }
      if (code === CloseCode.UNAUTHORIZED && fresh) {
        this.retriedAuth = true;
        code = CloseCode.TOKEN_EXPIRED;
      }
    }
    if (this.closing) return;
    if (!this.protocol.receiveClose(code, reason)) {
      this.end(closeError(code, reason));
      return;
    }
    this.reconnect(this.options.backoff.compute(0));
  }
  reconnect(delay) {
    if (this.closing || this.error !== void 0) return;
    if (this.state === "live") this.changeState("reconnecting");
    this.timer = setTimeout(() => void this.open(), delay);
  }
  /** Send what the protocol queued, soon: calls made together share frames. */
  flush() {
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => {
      this.flushing = false;
      const socket = this.socket;
      if (socket !== void 0) this.write(socket);
    });
  }
  write(socket) {
    if (socket.readyState !== OPEN || this.socket !== socket) return;
    for (const item of this.protocol.dataToSend()) {
      if (item instanceof Close) {
        socket.close(item.code, item.reason);
        return;
      }
      socket.send(item);
    }
  }
  // What the server said
  dispatch(messages) {
    for (const message of messages) {
      switch (message.type) {
        case "events": {
          const sink = this.sinks.get(message.session);
          if (sink !== void 0) sink.deliver(message.events);
          break;
        }
        case "published": {
          const publish = this.publishes.get(message.rid);
          this.publishes.delete(message.rid);
          publish?.resolve(message.offsets);
          break;
        }
        case "subscribed": {
          this.sinks.get(message.session)?.setState(message.state);
          const answer = this.subscribing.get(message.rid);
          this.subscribing.delete(message.rid);
          answer?.resolve();
          break;
        }
        case "error":
          this.receiveError(message);
          break;
        case "presence":
          for (const listener of [...this.presenceListeners.get(message.session) ?? []]) {
            report(() => listener(message));
          }
          break;
        case "gone":
          this.finishSink(message.session, goneError(message));
          break;
      }
    }
  }
  receiveError(message) {
    const error = errorFrom(message.code, message.message, message.details);
    const rid = message.rid;
    const publish = rid === void 0 ? void 0 : this.publishes.get(rid);
    if (rid !== void 0 && publish !== void 0) {
      this.publishes.delete(rid);
      publish.reject(error);
    } else if (rid !== void 0 && this.sinkRids.has(rid)) {
      const answer = this.subscribing.get(rid);
      this.subscribing.delete(rid);
      answer?.reject(error);
      this.finishSink(this.sinkRids.get(rid), error);
    } else if (this.errorListeners.size > 0) {
      for (const listener of [...this.errorListeners]) report(() => listener(error));
    } else {
      console.warn(`threadline: server error ${message.code}: ${message.message}`);
    }
  }
  finishSink(session, error) {
    const sink = this.sinks.get(session);
    this.sinks.delete(session);
    this.forgetRids(session);
    sink?.finish(error);
  }
  forgetRids(session) {
    for (const [rid, name] of [...this.sinkRids]) {
      if (name === session) this.sinkRids.delete(rid);
    }
  }
  /** Stop for good: fail what waits, end every subscription. */
  end(error) {
    if (error !== void 0 && this.error === void 0 && !this.closing) this.error = error;
    if (this.timer !== void 0) clearTimeout(this.timer);
    this.timer = void 0;
    const socket = this.socket;
    if (socket !== void 0 && error !== void 0) {
      this.socket = void 0;
      closeQuietly(socket);
    }
    const failure = error ?? new ConnectionClosedOK(1e3, "the client is closed");
    for (const answer of [...this.publishes.values(), ...this.subscribing.values()]) {
      answer.reject(failure);
    }
    this.publishes.clear();
    this.subscribing.clear();
    const sinks = [...this.sinks.values()];
    this.sinks.clear();
    this.sinkRids.clear();
    for (const sink of sinks) sink.finish(error);
    this.stopped.resolve();
    this.changeState("closed");
  }
  changeState(state) {
    if (this.state === state) return;
    this.state = state;
    for (const listener of [...this.connectionListeners]) report(() => listener(state));
  }
};
function closeQuietly(socket) {
  try {
    socket.close(CloseCode.NORMAL_CLOSURE);
  } catch {
  }
}
function report(call) {
  try {
    call();
  } catch (exc) {
    queueMicrotask(() => {
      throw exc;
    });
  }
}
function withTimeout(promise, ms, timeout) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout() ?? new Timeout("timed out")), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      }
    );
  });
}
function closeError(code, reason) {
  if (code === CloseCode.UNAUTHORIZED) {
    return new AuthError(reason || "token refused (close 4401)", "unauthorized", 401);
  }
  if (code === CloseCode.FORBIDDEN) {
    return new AuthError(reason || "forbidden (close 4403)", "forbidden", 403);
  }
  if (code === CloseCode.NORMAL_CLOSURE) return new ConnectionClosedOK(code, reason);
  return new ConnectionClosedError(code, reason);
}
function goneError(message) {
  if (message.reason === "offset_gone") {
    return new OffsetGone(
      `the subscription's offset is gone (earliest ${message.earliest ?? "?"}, tail ${message.tail ?? "?"})`,
      message.earliest ?? "",
      message.tail ?? ""
    );
  }
  if (message.reason === "forbidden") {
    return new Forbidden("the subscription is no longer allowed", "forbidden", 403);
  }
  return new SessionNotFound(`session ${JSON.stringify(message.session)} was deleted`, "session_not_found", 404);
}

// src/streaming.ts
var DEFAULT_MAX_IN_FLIGHT = 64;
var MessageStream = class {
  /** The message's id (`message_id` of every event of it). */
  messageId;
  /** The message's role. */
  role;
  /** The `seq` of the next delta: how many were written. */
  seq = 0;
  /** How the message ended, once it did. */
  status;
  /** The most deltas that were unanswered at once. */
  peakInFlight = 0;
  target;
  options;
  maxInFlight;
  inFlightSet = /* @__PURE__ */ new Set();
  error;
  partIndex = -1;
  partType;
  started = false;
  /** @throws RangeError - `maxInFlight` is below 1. */
  constructor(target, messageId, options = {}) {
    const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!(maxInFlight >= 1)) throw new RangeError("maxInFlight must be at least 1");
    this.target = target;
    this.messageId = messageId;
    this.role = options.role ?? "assistant";
    this.options = options;
    this.maxInFlight = maxInFlight;
  }
  /** Deltas published and not answered yet. */
  get inFlight() {
    return this.inFlightSet.size;
  }
  /**
   * Publish `message.start` and wait for it.
   *
   * @throws ThreadlineError - the server refused it.
   * @throws Timeout - no answer in time.
   */
  async start() {
    if (this.started) throw new InvalidState("the stream has started");
    const data = { message_id: this.messageId, role: this.role };
    if (this.options.runId !== void 0) data["run_id"] = this.options.runId;
    if (this.options.metadata !== void 0) data["metadata"] = this.options.metadata;
    await this.publish("message.start", data, this.options.visibility);
    this.started = true;
  }
  /**
   * Append `text` to the message: publish one delta, without waiting for its
   * answer. A change of `partType` starts a new part. Empty text publishes
   * nothing. Waits only while `maxInFlight` deltas are unanswered.
   *
   * @throws ThreadlineError - an earlier delta failed (for instance
   *   `AlreadyEnded`: the floor passed to a human and the server ended the
   *   message); stop producing.
   * @throws InvalidState - the stream has not started or has ended.
   */
  async write(text, options = {}) {
    const partType = options.partType ?? "text";
    this.check();
    if (!text) return;
    while (this.inFlightSet.size >= this.maxInFlight) {
      await Promise.race(this.inFlightSet);
      this.check();
    }
    if (partType !== this.partType) {
      this.partIndex += 1;
      this.partType = partType;
    }
    const data = {
      message_id: this.messageId,
      seq: this.seq,
      part_index: this.partIndex,
      part_type: partType,
      text
    };
    const answer = this.target.submit("message.delta", data);
    this.seq += 1;
    const tracked = answer.then(
      () => {
        this.inFlightSet.delete(tracked);
      },
      (exc) => {
        this.inFlightSet.delete(tracked);
        if (this.error === void 0) this.error = exc;
      }
    );
    this.inFlightSet.add(tracked);
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlightSet.size);
  }
  /**
   * End the message `complete` once every delta is answered; if one failed,
   * end it `error` (`publish_failed`) and throw that failure.
   *
   * @throws ThreadlineError - a delta or the end failed.
   * @throws Timeout - deltas or the end unanswered in time.
   */
  async finish() {
    try {
      await withTimeout(Promise.all(this.inFlightSet), this.target.timeout, () => {
        return new Timeout("deltas unanswered in time");
      });
    } catch (exc) {
      if (this.error === void 0) this.error = exc;
    }
    if (this.error !== void 0) {
      await this.endQuietly("error", "publish_failed");
      throw this.error;
    }
    await this.end("complete");
  }
  /**
   * Publish `message.end` with `status` (and `reason`) and wait for it.
   *
   * @throws ThreadlineError, Timeout - the end failed or was unanswered.
   */
  async end(status, reason) {
    if (this.status !== void 0) throw new InvalidState("the stream has ended");
    this.status = status;
    const data = { message_id: this.messageId, status };
    if (reason !== void 0) data["reason"] = reason;
    await this.publish("message.end", data);
  }
  /** End the message, best effort: the error that got us here matters more. */
  async endQuietly(status, reason) {
    if (this.status !== void 0 || !this.started) return;
    try {
      await this.end(status, reason);
    } catch (exc) {
      if (!(exc instanceof ThreadlineError)) throw exc;
    }
  }
  check() {
    if (!this.started || this.status !== void 0) {
      throw new InvalidState("write() outside the stream's producer");
    }
    if (this.error !== void 0) throw this.error;
    const signal = this.options.signal;
    if (signal?.aborted) throw signal.reason;
  }
  async publish(type, data, visibility) {
    await withTimeout(this.target.submit(type, data, visibility), this.target.timeout, () => {
      return new Timeout(`${type}: no answer in time`);
    });
  }
};
async function runStream(stream, producer, signal) {
  await stream.start();
  try {
    await producer(stream);
  } catch (exc) {
    if (signal?.aborted) {
      await stream.endQuietly("cancelled", "cancelled");
    } else {
      await stream.endQuietly("error", "producer_error");
    }
    throw exc;
  }
  if (signal?.aborted) {
    await stream.endQuietly("cancelled", "cancelled");
    return stream;
  }
  await stream.finish();
  return stream;
}

// src/subscription.ts
var DEFAULT_MAX_QUEUE = 1e3;
var Subscription = class {
  /** The session read. */
  session;
  /** `raw` or `compact`. */
  view;
  /**
   * The offset of the last event delivered to the consumer (or the start
   * asked for): store it to resume in a later page or process.
   */
  offset;
  /**
   * The session's state snapshot when the subscription (re)started, as this
   * reader may see it: participants, presence, controller, open messages and
   * runs, other participants' cursors.
   */
  state;
  /** Settles once the server accepted the subscription (or refused it). */
  ready;
  transport;
  onEvent;
  onEnd;
  maxQueue;
  queue = [];
  head = 0;
  resume;
  // the last offset queued
  phase = "starting";
  error;
  paused = false;
  waiter;
  reading = false;
  /** @internal Use `session.subscribe()`. */
  constructor(transport, session, options = {}) {
    const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    if (!(maxQueue >= 1)) throw new RangeError("maxQueue must be at least 1");
    this.transport = transport;
    this.session = session;
    this.view = options.view ?? "raw";
    this.offset = options.offset ?? "-1";
    this.resume = this.offset;
    this.onEvent = options.onEvent;
    this.onEnd = options.onEnd;
    this.maxQueue = maxQueue;
    this.ready = this.start();
    this.ready.catch(() => void 0);
  }
  // Async iteration
  [Symbol.asyncIterator]() {
    return this;
  }
  /**
   * The next event, waiting for it.
   *
   * @throws ConcurrencyError - another `next()` is waiting.
   * @throws InvalidState - the subscription delivers to `onEvent`.
   * @throws ThreadlineError - the subscription failed for good.
   */
  async next() {
    if (this.onEvent !== void 0) throw new InvalidState("this subscription delivers to onEvent");
    if (this.reading) throw new ConcurrencyError("another consumer is iterating this subscription");
    this.reading = true;
    try {
      for (; ; ) {
        if (this.head < this.queue.length) return { done: false, value: this.take() };
        if (this.phase === "ending") this.close();
        if (this.phase === "done") {
          if (this.error !== void 0) {
            const error = this.error;
            this.error = void 0;
            throw error;
          }
          return { done: true, value: void 0 };
        }
        await new Promise((resolve) => {
          this.waiter = resolve;
        });
      }
    } finally {
      this.reading = false;
    }
  }
  /** Leaving a `for await` loop: close the subscription. */
  async return() {
    this.close();
    return { done: true, value: void 0 };
  }
  // Public methods
  /**
   * Unsubscribe. Events already queued are dropped; iteration ends. Safe to
   * call twice, and while iterating.
   */
  close() {
    if (this.phase !== "done") {
      this.phase = "done";
      this.transport.unsubscribe(this);
      this.ended(void 0);
    }
    this.queue = [];
    this.head = 0;
    this.wake();
  }
  // The transport's side (Sink)
  /** @internal Where the transport resumes: after the last event queued. */
  resumeOffset() {
    return this.resume;
  }
  /** @internal Queue (or hand to `onEvent`) events in offset order. */
  deliver(events) {
    for (const event of events) {
      if (this.phase === "done" || this.phase === "ending") return;
      this.resume = event.offset;
      if (this.onEvent !== void 0) {
        this.offset = event.offset;
        try {
          this.onEvent(event);
        } catch (exc) {
          this.transport.unsubscribe(this);
          this.finish(exc);
          return;
        }
        if (event.type === "session.closed") this.close();
        continue;
      }
      this.queue.push(event);
      if (event.type === "session.closed") this.phase = "ending";
    }
    if (this.onEvent === void 0 && !this.paused && this.queue.length - this.head >= this.maxQueue) {
      this.paused = true;
      this.transport.pause(this);
    }
    this.wake();
  }
  /** @internal Record the snapshot that came with `subscribed`. */
  setState(state) {
    this.state = state;
  }
  /** @internal End after the queued events: cleanly, or raising `error`. */
  finish(error) {
    if (this.phase !== "done") {
      this.phase = "done";
      this.error = error;
      this.ended(error);
    }
    this.wake();
  }
  // Private methods
  async start() {
    try {
      await this.transport.subscribe(this);
    } catch (exc) {
      this.finish(exc);
      throw exc;
    }
    if (this.phase === "starting") this.phase = "open";
  }
  take() {
    const event = this.queue[this.head];
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.offset = event.offset;
    const waiting = this.queue.length - this.head;
    if (this.paused && waiting <= this.maxQueue / 2 && this.phase !== "done") {
      this.paused = false;
      this.transport.resume(this);
    }
    return event;
  }
  wake() {
    const waiter = this.waiter;
    this.waiter = void 0;
    waiter?.();
  }
  ended(error) {
    if (this.onEnd === void 0) return;
    const onEnd = this.onEnd;
    queueMicrotask(() => error === void 0 ? onEnd() : onEnd(error));
  }
};

// src/session.ts
var EVENT_TYPE = /^(message|message\.start|message\.delta|message\.end|run\.start|run\.end|run\.cancel|tool\.call|tool\.result|control\.request|control\.accept|control\.release|participant\.joined|participant\.left|note|session\.updated|session\.closed|redaction|x(\.[A-Za-z0-9_-]+)+)$/;
var ID = /^[A-Za-z0-9._:-]{1,128}$/;
function draftJson(draft) {
  if (draft === null || typeof draft !== "object") throw new InvalidEvent("a draft must be an object");
  if (typeof draft.type !== "string" || !EVENT_TYPE.test(draft.type)) {
    throw new InvalidEvent(`type: not an event type: ${JSON.stringify(draft.type)}`, "type");
  }
  const data = draft.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new InvalidEvent("data: must be an object", "data");
  }
  const id = draft.id ?? uuid7();
  if (typeof id !== "string" || !ID.test(id)) throw new InvalidEvent("id: must match [A-Za-z0-9._:-]{1,128}", "id");
  const out = { type: draft.type, id, data };
  if (draft.visibility !== void 0) {
    if (draft.visibility !== "all" && draft.visibility !== "staff") {
      throw new InvalidEvent("visibility: must be all or staff", "visibility");
    }
    out.visibility = draft.visibility;
  }
  if (draft.trace_id !== void 0) {
    if (typeof draft.trace_id !== "string" || !ID.test(draft.trace_id)) {
      throw new InvalidEvent("trace_id: must match [A-Za-z0-9._:-]{1,128}", "trace_id");
    }
    out.trace_id = draft.trace_id;
  }
  return out;
}
var Session = class {
  /** The session's id. */
  id;
  owner;
  /** @internal Use `client.session(id)`. */
  constructor(owner, id) {
    this.owner = owner;
    this.id = id;
  }
  /** The client's timeout for one operation, in milliseconds. */
  get timeout() {
    return this.owner.timeout;
  }
  // Reading
  /**
   * The session's events after `offset`, then live ones, with no gap or
   * duplicate across reconnects; starts at once. Iterate the result with
   * `for await`, or pass `onEvent`. See {@link Subscription}.
   *
   * @throws InvalidState - the client is closed.
   */
  subscribe(options = {}) {
    this.owner.checkOpen();
    return new Subscription(this.owner.transport, this.id, options);
  }
  /**
   * Call `listener` for each presence change in the session: a device of a
   * participant became `active`, `idle`, `typing`, or `offline`. The server
   * sends presence to subscribers only: subscribe to the session too.
   *
   * @returns A function that removes the listener.
   */
  onPresence(listener) {
    this.owner.checkOpen();
    return this.owner.transport.addPresenceListener(this.id, listener);
  }
  /**
   * The session's state as the caller may see it (`GET /v1/sessions/{id}`):
   * participants, presence, controller, open messages and runs, other
   * participants' cursors, `offset` (the tail) and the `session` document.
   *
   * @throws SessionNotFound, AuthError, Timeout
   */
  async state() {
    this.owner.checkOpen();
    return this.owner.api.request("GET", `/v1/sessions/${encodeURIComponent(this.id)}`);
  }
  // Cursor and presence
  /**
   * Move the caller's read cursor forward to `offset` (read receipts, unread
   * counts). Fire and forget: a cursor never moves back and stops at the
   * caller's visible tail; a failure goes to `client.onError` listeners.
   *
   * @throws RangeError - `offset` is malformed.
   */
  setCursor(offset) {
    this.owner.checkOpen();
    this.owner.transport.cursor(this.id, offset);
  }
  /**
   * Set this device's presence status: `active`, `idle` or `typing`. Fire and
   * forget; sent again (the latest per session) after a reconnect.
   *
   * @throws RangeError - `status` is malformed.
   */
  setPresence(status) {
    this.owner.checkOpen();
    this.owner.transport.presence(this.id, status);
  }
  async publish(drafts, options = {}) {
    const one = !Array.isArray(drafts);
    const events = (one ? [drafts] : drafts).map(draftJson);
    if (events.length === 0) throw new RangeError("nothing to publish");
    this.owner.checkOpen();
    const deadline = Date.now() + this.timeout;
    for (; ; ) {
      const answer = this.owner.transport.submit(this.id, events, options.expectedOffset);
      try {
        const offsets = await withTimeout(answer, Math.max(0, deadline - Date.now()), () => {
          return new Timeout(`publish to ${JSON.stringify(this.id)}: no answer in time`);
        });
        return one ? offsets[0] : offsets;
      } catch (exc) {
        if (!(exc instanceof RateLimited) || Date.now() + exc.retryAfter >= deadline) throw exc;
        await new Promise((resolve) => setTimeout(resolve, exc.retryAfter));
      }
    }
  }
  /**
   * Publish a complete text message; resolve to its offset.
   *
   * @throws see {@link publish}.
   */
  async sendMessage(text, options = {}) {
    const data = {
      message_id: options.messageId ?? uuid7(),
      role: options.role ?? await this.owner.defaultRole(),
      parts: [{ type: "text", text }]
    };
    if (options.runId !== void 0) data["run_id"] = options.runId;
    if (options.metadata !== void 0) data["metadata"] = options.metadata;
    const draft = { type: "message", data };
    if (options.visibility !== void 0) draft.visibility = options.visibility;
    return this.publish(draft);
  }
  /**
   * Stream a message: publish `message.start`, run `producer(stream)` — which
   * calls `stream.write(text)` for each piece — and always end the message
   * (`complete`, or `cancelled` / `error`). Deltas are pipelined (up to
   * `maxInFlight` unanswered). See {@link MessageStream}.
   *
   * ```ts
   * await session.streamMessage(async (message) => {
   *   for await (const token of llm) await message.write(token);
   * });
   * ```
   *
   * @returns The stream, ended.
   * @throws what `producer` threw (after ending the message `error`), or the
   *   publish failure that ended it.
   */
  async streamMessage(producer, options = {}) {
    this.owner.checkOpen();
    const stream = new MessageStream(this, options.messageId ?? uuid7(), options);
    return runStream(stream, producer, options.signal);
  }
  /** @internal Queue one event for publishing now (for `MessageStream`). */
  submit(type, data, visibility) {
    this.owner.checkOpen();
    const draft = { type, data };
    if (visibility !== void 0) draft.visibility = visibility;
    return this.owner.transport.submit(this.id, [draftJson(draft)]);
  }
};

// src/tokens.ts
var REFRESH_MARGIN = 6e4;
var MIN_INTERVAL = 1e3;
var MAX_TIMER = 2 ** 31 - 1;
function tokenClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return {};
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === "object" && !Array.isArray(claims) ? claims : {};
  } catch {
    return {};
  }
}
var Tokens = class {
  /** The token to send now (undefined until the provider gave the first one). */
  token;
  /** The refresh hook. */
  provider;
  listeners = [];
  inflight;
  timer;
  running = false;
  /** @throws TypeError - neither a non-empty token nor a provider. */
  constructor(token, provider) {
    if (token !== void 0 && (typeof token !== "string" || token.length === 0)) {
      throw new TypeError("token must be a non-empty string");
    }
    if (token === void 0 && typeof provider !== "function") {
      throw new TypeError("give a token or a getToken hook");
    }
    this.token = token;
    this.provider = provider;
  }
  /** The current token's claims, unverified (`{}` if it is no JWT). */
  get claims() {
    return this.token === void 0 ? {} : tokenClaims(this.token);
  }
  /** Call `listener(token)` whenever the token is replaced. */
  addListener(listener) {
    this.listeners.push(listener);
  }
  /**
   * The token to send now, asking the provider for the first one.
   *
   * @throws AuthError - the provider failed.
   */
  async current() {
    if (this.token === void 0) await this.refresh(void 0);
    return this.token;
  }
  /**
   * Get a fresh token unless `stale` was already replaced.
   *
   * Concurrent callers share one call of the provider.
   *
   * @returns Whether a token other than `stale` is now current.
   * @throws AuthError - the provider failed or returned no token.
   */
  async refresh(stale) {
    while (this.inflight !== void 0) {
      await this.inflight.catch(() => false);
    }
    if (this.token !== stale) return true;
    const provider = this.provider;
    if (provider === void 0) return false;
    const call = (async () => {
      let token;
      try {
        token = await provider();
      } catch (exc) {
        throw new AuthError(`token provider failed: ${String(exc)}`);
      }
      if (typeof token !== "string" || token.length === 0) {
        throw new AuthError("token provider returned no token");
      }
      this.token = token;
      for (const listener of this.listeners) listener(token);
      this.schedule(MIN_INTERVAL);
      return token !== stale;
    })();
    this.inflight = call;
    try {
      return await call;
    } finally {
      this.inflight = void 0;
    }
  }
  /**
   * Refresh the token ahead of its expiry, until {@link stop} (with a provider
   * and a token that says `exp` only). The timer does not keep Node alive.
   */
  start() {
    if (this.provider === void 0 || this.running) return;
    this.running = true;
    this.schedule(0);
  }
  /** Stop refreshing ahead. Safe to call twice. */
  stop() {
    this.running = false;
    if (this.timer !== void 0) clearTimeout(this.timer);
    this.timer = void 0;
  }
  /** (Re)arm the refresh-ahead timer for the current token's `exp`. */
  schedule(minDelay) {
    if (this.timer !== void 0) clearTimeout(this.timer);
    this.timer = void 0;
    const exp = this.claims["exp"];
    if (!this.running || typeof exp !== "number") return;
    const delay = Math.max(exp * 1e3 - REFRESH_MARGIN - Date.now(), minDelay);
    this.timer = setTimeout(() => {
      this.timer = void 0;
      this.refresh(this.token).then(
        () => {
          if (this.timer === void 0) this.schedule(MIN_INTERVAL);
        },
        () => this.schedule(MIN_INTERVAL)
      );
    }, Math.min(delay, MAX_TIMER));
    unref(this.timer);
  }
};
function unref(timer) {
  if (timer !== null && typeof timer === "object" && "unref" in timer) {
    const method = timer.unref;
    if (typeof method === "function") method.call(timer);
  }
}

// src/client.ts
var DEFAULT_TIMEOUT = 3e4;
var SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
var DEVICE2 = /^[A-Za-z0-9_-]{1,64}$/;
var WS_SCHEMES = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" };
var HTTP_SCHEMES = {
  "http:": "http:",
  "https:": "https:",
  "ws:": "http:",
  "wss:": "https:"
};
function connect(url, options) {
  return new Client(url, options);
}
var Client = class {
  /** The server's base HTTP URL. */
  url;
  /** This tab's or install's id, if given. */
  device;
  /** Milliseconds one operation may take. */
  timeout;
  /** The current token and its refresh hook. */
  tokens;
  /** What carries subscriptions, publishes, cursors and presence. */
  transport;
  /** The session HTTP API. */
  api;
  closed = false;
  constructor(url, options) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`not an http(s):// or ws(s):// URL: ${JSON.stringify(url)}`);
    }
    const http = HTTP_SCHEMES[parsed.protocol];
    const ws = WS_SCHEMES[parsed.protocol];
    if (http === void 0 || ws === void 0 || !parsed.host) {
      throw new TypeError(`not an http(s):// or ws(s):// URL: ${JSON.stringify(url)}`);
    }
    if (options.device !== void 0 && !DEVICE2.test(options.device)) {
      throw new TypeError("device must match [A-Za-z0-9_-]{1,64}");
    }
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (!(timeout > 0)) throw new TypeError("timeout must be positive");
    const base = parsed.pathname.replace(/\/+$/, "");
    this.url = `${http}//${parsed.host}${base}`;
    this.device = options.device;
    this.timeout = timeout;
    this.tokens = new Tokens(options.token, options.getToken);
    const backoff = options.backoff ?? new ExponentialBackoff();
    this.api = new HttpApi(this.url, this.tokens, {
      device: options.device,
      timeout,
      backoff,
      fetch: options.fetch
    });
    this.transport = new WebSocketTransport(`${ws}//${parsed.host}${base}/v1/ws`, this.tokens, {
      device: options.device,
      backoff,
      timeout,
      WebSocketImpl: options.WebSocketImpl ?? globalWebSocket()
    });
    this.tokens.addListener((token) => this.transport.onToken(token));
    this.tokens.start();
  }
  // Public methods
  /**
   * The session `id` (nothing is sent).
   *
   * @throws TypeError - the id is not `[A-Za-z0-9._:-]{1,128}`.
   */
  session(id) {
    if (typeof id !== "string" || !SESSION_ID.test(id)) {
      throw new TypeError("session ids match [A-Za-z0-9._:-]{1,128}");
    }
    return new Session(this, id);
  }
  /**
   * Create the session, or return it if it exists (safe to retry).
   *
   * @throws AuthError, Forbidden - the token may not create it.
   * @throws Timeout - no answer in time.
   */
  async createSession(id, options = {}) {
    this.session(id);
    this.checkOpen();
    const body = { id, metadata: options.metadata ?? {} };
    if (options.customer !== void 0) body["customer"] = options.customer;
    return this.api.request("POST", "/v1/sessions", body);
  }
  /**
   * The caller's sessions (`GET /v1/me/sessions`): those it created, was
   * named customer of, published in or set a cursor in, with unread counts
   * and whether an answer is in flight. How a new tab or device finds its
   * conversations.
   *
   * @throws AuthError, Timeout
   */
  async mySessions() {
    this.checkOpen();
    const answer = await this.api.request("GET", "/v1/me/sessions");
    return answer.sessions;
  }
  /**
   * Open the WebSocket now instead of on first use, say to show a live
   * connection before any subscription. It reopens by itself after drops,
   * like a connection opened by a subscription.
   *
   * @throws InvalidState - the client is closed.
   */
  open() {
    this.checkOpen();
    this.transport.connect();
  }
  /** Where the connection stands: `idle`, `connecting`, `live`, `reconnecting` or `closed`. */
  get connectionState() {
    return this.transport.state;
  }
  /**
   * Call `listener` with each change of {@link connectionState} (for a
   * connection indicator). The connection opens on first use.
   *
   * @returns A function that removes the listener.
   */
  onConnection(listener) {
    return this.transport.addConnectionListener(listener);
  }
  /**
   * Call `listener` with each error the server sends that answers no request
   * of the caller: a refused cursor or presence, say.
   *
   * @returns A function that removes the listener.
   */
  onError(listener) {
    return this.transport.addErrorListener(listener);
  }
  /**
   * Close: end subscriptions, reject unanswered publishes, close the
   * WebSocket after what is queued. Safe to call twice.
   */
  async close() {
    if (this.closed) return;
    this.closed = true;
    this.tokens.stop();
    await this.transport.close();
  }
  // For sessions
  /**
   * The role of this identity's messages: `user` for a customer.
   *
   * @internal
   */
  async defaultRole() {
    await this.tokens.current();
    const role = this.tokens.claims["role"] ?? "customer";
    return role === "customer" ? "user" : "assistant";
  }
  /**
   * Throw `InvalidState` if closed.
   *
   * @internal
   */
  checkOpen() {
    if (this.closed) throw new InvalidState("the client is closed");
  }
};
export {
  AlreadyAccepted,
  AlreadyEnded,
  AuthError,
  Client,
  ClientProtocol,
  Close,
  CloseCode,
  ConcurrencyError,
  ConnectionClosed,
  ConnectionClosedError,
  ConnectionClosedOK,
  ConstantBackoff,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_MESSAGES,
  DEFAULT_MAX_QUEUE,
  DEFAULT_TIMEOUT,
  DeltaGap,
  DuplicateReference,
  ErrorCode,
  EventTooLarge,
  ExponentialBackoff,
  Forbidden,
  IdConflict,
  InvalidEvent,
  InvalidOffset,
  InvalidState,
  LogError,
  MessageStream,
  NotInControl,
  OffsetGone,
  ProtocolError,
  REFRESH_MARGIN,
  RateLimited,
  SUBPROTOCOL,
  Session,
  SessionClosed,
  SessionNotFound,
  SessionRuleError,
  StorageError,
  Subscription,
  TailMismatch,
  ThreadlineError,
  Timeout,
  Tokens,
  UnknownReference,
  WebSocketTransport,
  connect,
  decodeFrame,
  draftJson,
  encodeJson,
  encodeMessage,
  errorFrom,
  isRetryable,
  parseServerMessage,
  tokenClaims,
  uuid7
};
