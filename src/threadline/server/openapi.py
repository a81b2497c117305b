"""The OpenAPI 3.1 description of the session HTTP API, served at ``/v1/openapi.json``.

Written by hand next to the routes (a test keeps the two in step): the
document is part of the product, so it says what the routes promise, with the
error codes a client can act on.
"""

from __future__ import annotations

from typing import Any, Final

from .. import __version__

__all__ = ["openapi_document"]

_ERROR: Final = {"$ref": "#/components/schemas/Error"}
_BEARER: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
_SESSION_ID: Final = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "Malformed request (`invalid_event`, `invalid_json`, `invalid_offset`, …)",
        401: "Missing, forged or expired token (`missing_token`, `invalid_token`, …)",
        403: "The token does not grant this (`forbidden`)",
        404: "No such session, or not yours (`session_not_found`)",
        409: "The session's state refuses it (`not_in_control`, `delta_gap`, …)",
        410: "The offset is of another generation (`offset_gone`)",
        412: "`expected_offset` is not the tail (`tail_mismatch`)",
        413: "Body or event too large (`body_too_large`, `event_too_large`)",
        429: "Publish rate exceeded (`rate_limited`); see `Retry-After`",
    }
    return {
        str(status): {
            "description": descriptions[status],
            "content": {"application/json": {"schema": _ERROR}},
        }
        for status in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _audit_paths() -> dict[str, Any]:
    """The audit routes (docs/topics/audit.md)."""
    view = {
        "name": "view",
        "in": "query",
        "description": "`staff` (default): every event, the audit chain; "
        "`customer`: the customer view's own chain.",
        "schema": {"type": "string", "enum": ["staff", "customer"]},
    }
    head = {"$ref": "#/components/schemas/AuditHead"}
    return {
        "/v1/audit/key": {
            "get": {
                "summary": "The public key that signs audit heads, as a JWKS "
                "(Ed25519, `kid` = its RFC 7638 thumbprint); no token needed",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "keys": {"type": "array", "items": {"type": "object"}}
                            },
                        },
                        "The JWKS",
                    )
                },
            }
        },
        "/v1/sessions/{session_id}/audit/head": {
            "get": {
                "summary": "The view's signed head: its last offset and chain hash "
                "(supervisor and service tokens)",
                "security": _BEARER,
                "parameters": [_SESSION_ID, view],
                "responses": {
                    "200": _json(head, "The signed head"),
                    **_errors(400, 401, 403, 404),
                },
            }
        },
        "/v1/sessions/{session_id}/audit": {
            "get": {
                "summary": "Export the view's chain (supervisor and service tokens)",
                "description": 'JSON Lines: first `{"anchor": {v, tenant, '
                "session, view, after, prev_hash, head}}`, then each stored "
                "event after `after` with its `data_sha256`, up to the signed "
                "head. `threadline audit verify` checks it.",
                "security": _BEARER,
                "parameters": [
                    _SESSION_ID,
                    view,
                    {
                        "name": "offset",
                        "in": "query",
                        "description": "Export the events after this offset "
                        "(default `-1`: from the start).",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The export",
                        "content": {"application/jsonl": {"schema": {}}},
                    },
                    **_errors(400, 401, 403, 404, 410),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    events_read = {
        "summary": "Read events in your view (catch-up, long-poll or SSE)",
        "security": _BEARER,
        "parameters": [
            _SESSION_ID,
            {"name": "offset", "in": "query", "schema": {"type": "string"}},
            {
                "name": "live",
                "in": "query",
                "schema": {"type": "string", "enum": ["long-poll", "sse"]},
            },
            {
                "name": "view",
                "in": "query",
                "description": "`raw` (default): every event; `compact`: streamed "
                "messages folded (docs/topics/compaction.md); anything else is "
                "`400 invalid_view`.",
                "schema": {"type": "string", "enum": ["raw", "compact"]},
            },
            {"name": "ticket", "in": "query", "schema": {"type": "string"}},
            {
                "name": "device",
                "in": "query",
                "description": "With `live=sse`: the device the stream holds "
                "present (else the `Threadline-Device` header, else one assigned).",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            },
        ],
        "responses": {
            "200": {
                "description": "Events after `offset` (a JSON array), or an SSE stream "
                "(one event per log event: `id: <offset>`, `data: <envelope>`; "
                "`event: presence` and `event: control` without `id`).",
                "headers": {
                    "Stream-Next-Offset": {"schema": {"type": "string"}},
                    "Stream-Up-To-Date": {"schema": {"type": "string"}},
                    "ETag": {"schema": {"type": "string"}},
                },
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        }
                    },
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            "304": {"description": "Not modified (If-None-Match)"},
            **_errors(400, 401, 403, 404, 410),
        },
    }
    publish = {
        "summary": "Publish one event, or a batch (all or nothing, each exactly once)",
        "security": _BEARER,
        "parameters": [_SESSION_ID],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/EventDraft"},
                            {
                                "type": "object",
                                "required": ["events"],
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 500,
                                        "items": {
                                            "$ref": "#/components/schemas/EventDraft"
                                        },
                                    },
                                    "expected_offset": {"type": "string"},
                                },
                            },
                        ]
                    }
                }
            },
        },
        "responses": {
            "200": _json(
                {"$ref": "#/components/schemas/Published"}, "Stored (or retried)"
            ),
            **_errors(400, 401, 403, 404, 409, 412, 413, 429),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Threadline sessions",
            "version": __version__,
            "description": "Durable sessions for AI conversations. Offsets, tails and "
            "ETags are in the reader's view: a customer never learns of staff events.",
        },
        "paths": {
            "/v1/sessions": {
                "post": {
                    "summary": "Create or ensure a session",
                    "security": _BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "customer": {"type": "string"},
                                        "metadata": {"type": "object"},
                                        "controller_role": {
                                            "enum": ["ai", "agent", "service", None],
                                            "default": "ai",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(
                            {"$ref": "#/components/schemas/Session"}, "Created"
                        ),
                        "200": _json(
                            {"$ref": "#/components/schemas/Session"}, "Existed"
                        ),
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
            "/v1/sessions/{session_id}": {
                "get": {
                    "summary": "State snapshot: participants, presence, controller, "
                    "open messages and runs, read receipts, the tail of your view",
                    "security": _BEARER,
                    "parameters": [_SESSION_ID],
                    "responses": {
                        "200": _json({"type": "object"}, "The snapshot"),
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/v1/sessions/{session_id}/events": {"get": events_read, "post": publish},
            "/v1/sessions/{session_id}/cursor": {
                "put": {
                    "summary": "Move your read cursor forward (clamped to your tail)",
                    "security": _BEARER,
                    "parameters": [_SESSION_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["offset"],
                                    "properties": {"offset": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "The cursor after the move"),
                        **_errors(400, 401, 403, 404, 410),
                    },
                }
            },
            "/v1/sessions/{session_id}/presence": {
                "post": {
                    "summary": "Set your device's presence status and keep it present "
                    "for 15 s (clients without a socket); `offline` drops it now",
                    "security": _BEARER,
                    "parameters": [_SESSION_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "status": {
                                            "type": "string",
                                            "enum": [
                                                "active",
                                                "idle",
                                                "typing",
                                                "offline",
                                            ],
                                        },
                                        "device": {
                                            "type": "string",
                                            "pattern": "^[A-Za-z0-9_-]{1,64}$",
                                            "description": "Default: the "
                                            "`Threadline-Device` header, else `http`",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "presence": {
                                        "type": "array",
                                        "items": {
                                            "$ref": "#/components/schemas/Presence"
                                        },
                                    }
                                },
                            },
                            "The devices present now, as you may see them",
                        ),
                        **_errors(400, 401, 403, 404, 429),
                    },
                }
            },
            "/v1/sessions/{session_id}/tickets": {
                "post": {
                    "summary": "A 60 s read-only ticket for EventSource (`?ticket=`)",
                    "security": _BEARER,
                    "parameters": [_SESSION_ID],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "ticket": {"type": "string"},
                                    "expires": {"type": "string"},
                                },
                            },
                            "The ticket",
                        ),
                        **_errors(401, 403, 404),
                    },
                }
            },
            **_audit_paths(),
            "/v1/me/sessions": {
                "get": {
                    "summary": "Your sessions: last offset, unread count, "
                    "controller, whether a message is in flight (how a new "
                    "device finds the conversation)",
                    "security": _BEARER,
                    "responses": {
                        "200": _json({"type": "object"}, "Your sessions"),
                        **_errors(401),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "Presence": {
                    "type": "object",
                    "required": ["actor", "status"],
                    "properties": {
                        "actor": {
                            "type": "object",
                            "description": "`{id, role, name?, device}`",
                        },
                        "status": {
                            "type": "string",
                            "enum": ["active", "idle", "typing"],
                        },
                    },
                },
                "EventDraft": {
                    "type": "object",
                    "required": ["type", "id", "data"],
                    "properties": {
                        "type": {"type": "string"},
                        "id": {
                            "type": "string",
                            "description": "UUIDv7, for exactly-once",
                        },
                        "data": {"type": "object"},
                        "visibility": {"type": "string", "enum": ["all", "staff"]},
                        "trace_id": {"type": "string"},
                    },
                },
                "Event": {
                    "type": "object",
                    "description": "The stored envelope (v1): docs/topics/events.md",
                    "required": [
                        "v",
                        "offset",
                        "ts",
                        "type",
                        "id",
                        "actor",
                        "visibility",
                        "data",
                    ],
                },
                "AuditHead": {
                    "type": "object",
                    "description": "Signed with Ed25519 over the RFC 8785 JSON of "
                    "every other field; `signature` is base64url.",
                    "required": [
                        "tenant",
                        "session",
                        "view",
                        "offset",
                        "hash",
                        "ts",
                        "key_id",
                        "signature",
                    ],
                    "properties": {
                        "tenant": {"type": "string"},
                        "session": {"type": "string"},
                        "view": {"type": "string", "enum": ["staff", "customer"]},
                        "offset": {"type": "string"},
                        "hash": {"type": "string"},
                        "ts": {"type": "string"},
                        "key_id": {"type": "string"},
                        "signature": {"type": "string"},
                    },
                },
                "Published": {
                    "type": "object",
                    "properties": {
                        "events": {"type": "array", "items": {"type": "object"}},
                        "offset": {"type": "string"},
                    },
                },
                "Session": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "customer": {"type": ["string", "null"]},
                        "metadata": {"type": "object"},
                        "created": {"type": "string"},
                        "controller_role": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
