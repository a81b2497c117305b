/**
 * The Threadline client for browsers and Node: durable sessions over the
 * WebSocket protocol `threadline.v1`, with resume, publish, presence and
 * cursors. No runtime dependencies.
 *
 * ```ts
 * import { connect } from "@threadline/client";
 *
 * const client = connect("http://localhost:4437", { token, device: "tab-7f3a" });
 * const session = client.session("order-1234");
 * for await (const event of session.subscribe({ offset: "-1" })) console.log(event.type, event.data);
 * ```
 *
 * Modules mirror the Python client's: `client` (`connect`, `Client`),
 * `session`, `subscription`, `streaming` (`MessageStream`), `websocket` (the
 * transport), `transports` (the seam to the platform's WebSocket and fetch),
 * `backoff`, `tokens`, `ids` (UUIDv7), `errors`, and `protocol/` (the
 * sans-I/O `ClientProtocol` and the generated wire types).
 *
 * @module
 */

export { ConstantBackoff, ExponentialBackoff, type Backoff, type ExponentialBackoffOptions } from "./backoff.js";
export {
  Client,
  connect,
  DEFAULT_TIMEOUT,
  type ConnectOptions,
  type CreateSessionOptions,
  type MySession,
  type SessionInfo,
} from "./client.js";
export {
  AlreadyAccepted,
  AlreadyEnded,
  AuthError,
  ConcurrencyError,
  ConnectionClosed,
  ConnectionClosedError,
  ConnectionClosedOK,
  DeltaGap,
  DuplicateReference,
  errorFrom,
  EventTooLarge,
  Forbidden,
  IdConflict,
  InvalidEvent,
  InvalidOffset,
  InvalidState,
  LogError,
  NotInControl,
  OffsetGone,
  ProtocolError,
  RateLimited,
  SessionClosed,
  SessionNotFound,
  SessionRuleError,
  StorageError,
  TailMismatch,
  ThreadlineError,
  Timeout,
  UnknownReference,
} from "./errors.js";
export { uuid7 } from "./ids.js";
export { ClientProtocol, type ClientProtocolOptions, type State } from "./protocol/client_protocol.js";
export { Close, CloseCode, ErrorCode, isRetryable } from "./protocol/codes.js";
export {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_MESSAGES,
  decodeFrame,
  encodeJson,
  SUBPROTOCOL,
  type JSONObject,
} from "./protocol/frames.js";
export { encodeMessage, parseServerMessage } from "./protocol/messages.js";
export type * from "./protocol/types.js";
export { draftJson, Session, type Draft, type PublishOptions, type SendMessageOptions } from "./session.js";
export {
  DEFAULT_MAX_IN_FLIGHT,
  MessageStream,
  type EndStatus,
  type MessageRole,
  type StreamMessageOptions,
  type TextPart,
} from "./streaming.js";
export { DEFAULT_MAX_QUEUE, Subscription, type SubscribeOptions } from "./subscription.js";
export { REFRESH_MARGIN, tokenClaims, Tokens, type TokenProvider } from "./tokens.js";
export { type WebSocketConstructor, type WebSocketLike } from "./transports.js";
export {
  WebSocketTransport,
  type ConnectionListener,
  type ConnectionState,
  type ErrorListener,
  type PresenceListener,
} from "./websocket.js";
