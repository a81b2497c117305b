// A session, live: its subscription, its folded state (messages, runs,
// requests, the floor, members) and its rendering as a transcript. Used by
// the customer widget (customer view) and the consoles (staff view).
import { avatar, badge, clock, fill, h, icon, nameOf, Presence, roleLabel } from "./common.js";

const REASONS = {
  refund_over_limit: "refund above the AI's limit",
  customer_request: "the customer asked for a person",
  model_escalation: "the AI needs a human",
};

/** Render text with **bold** spans (nothing else is interpreted). */
function richText(node, text) {
  const pieces = String(text).split(/\*\*(.+?)\*\*/g);
  fill(node, ...pieces.map((piece, i) => (i % 2 ? h("strong", {}, piece) : piece)));
}

function short(value, limit = 90) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/**
 * The folded state of a session and its transcript in `list`
 * ([data-testid=messages]): messages by start offset, staff notes, tool
 * calls, and a line per control change.
 */
export class Transcript {
  /**
   * @param list - The [data-testid=messages] element.
   * @param options - `staff` (the staff view: notes, tools), `me` (the
   *   reader's participant id), `ai` ({id, name} of the AI), `onChange`.
   */
  constructor(list, { staff = false, me, ai, onChange = () => {} } = {}) {
    this.list = list;
    this.staff = staff;
    this.me = me;
    this.ai = ai ?? { id: "demo-ai", name: "AI" };
    this.onChange = onChange;
    this.messages = new Map();
    this.runs = new Map();
    this.requests = new Map();
    this.tools = new Map();
    this.members = new Map();
    this.known = new Map([[this.ai.id, { id: this.ai.id, role: "ai", name: this.ai.name }]]);
    this.controller = { id: null, role: "ai" };
    this.customer = null;
    this.closed = false;
    this.offset = "-1";
    this.thinking = h(
      "div",
      { class: "thinking", "data-testid": "thinking", hidden: true },
      avatar({ role: "ai" }),
      h("div", { class: "msg__bubble" }, h("span", { class: "dots" }, h("i"), h("i"), h("i"))),
    );
    list.replaceChildren(this.thinking);
  }

  // State

  /** Start from a state snapshot (`subscribed.state` or `GET /v1/sessions/{id}`). */
  applyState(state) {
    if (!state) return;
    this.customer = state.customer ?? this.customer;
    this.controller = state.controller ?? null;
    this.closed = Boolean(state.closed);
    for (const participant of state.participants ?? []) {
      this.members.set(participant.id, participant);
      this.known.set(participant.id, participant);
    }
    this.requests.clear();
    for (const request of state.requests ?? []) this.requests.set(request.request_id, request);
    for (const run of state.runs ?? []) this.runs.set(run.run_id, run.actor);
    this.render();
  }

  /** Who holds the floor: {id, role} (id may be null: any participant of the role), or null. */
  get floor() {
    return this.controller;
  }

  /** The role holding the floor, or "none". */
  get controllerRole() {
    return this.controller?.role ?? "none";
  }

  /** Whether `id` holds the floor. */
  holds(id) {
    return this.controller?.id === id;
  }

  /** Pending control requests (oldest first). */
  pending() {
    return [...this.requests.values()];
  }

  /** Open runs of the AI (their ids), from runs and streaming messages. */
  openAiRuns() {
    const ids = new Set();
    for (const [id, actor] of this.runs) if (actor?.role === "ai") ids.add(id);
    for (const message of this.messages.values()) {
      if (message.status === "streaming" && message.actor?.role === "ai" && message.runId) ids.add(message.runId);
    }
    return [...ids];
  }

  /** Whether an assistant message is being streamed now. */
  streaming() {
    return [...this.messages.values()].some((m) => m.status === "streaming" && m.role === "assistant");
  }

  /** The display actor of a participant id. */
  actor(id) {
    return this.known.get(id) ?? { id, role: id === this.ai.id ? "ai" : "agent", name: id };
  }

  // Events

  /** Fold one event and update the transcript. */
  apply(event) {
    if (event.offset) this.offset = event.offset;
    if (event.actor?.id && event.actor.role !== "server") this.known.set(event.actor.id, event.actor);
    const data = event.data ?? {};
    switch (event.type) {
      case "message":
        this.message(event, data.status ?? "complete");
        break;
      case "message.start":
        this.message(event, "streaming");
        break;
      case "message.delta":
        this.delta(event);
        break;
      case "message.end":
        this.end(data);
        break;
      case "run.start":
        this.runs.set(data.run_id, event.actor);
        break;
      case "run.end":
        this.runs.delete(data.run_id);
        break;
      case "run.cancel":
        if (this.staff) this.line(event, [h("strong", {}, nameOf(event.actor)), " stopped the answer"]);
        break;
      case "tool.call":
      case "tool.result":
        this.tool(event);
        break;
      case "note":
        this.note(event);
        break;
      case "control.request":
        this.request(event);
        break;
      case "control.accept":
        this.controller = { id: event.actor.id, role: event.actor.role };
        this.requests.clear();
        this.line(
          event,
          this.staff
            ? [h("strong", {}, nameOf(event.actor)), ` (${roleLabel(event.actor.role).toLowerCase()}) took over the conversation`]
            : [h("strong", {}, nameOf(event.actor)), " from our support team joined the chat"],
          "control",
        );
        break;
      case "control.release": {
        const to = data.to ? this.actor(data.to) : null;
        this.controller = to ? { id: to.id, role: to.role } : null;
        this.line(
          event,
          to
            ? [h("strong", {}, nameOf(event.actor)), this.staff ? " handed the conversation back to " : " handed you back to ", h("strong", {}, nameOf(to)), to.role === "ai" ? " (AI)" : ""]
            : [h("strong", {}, nameOf(event.actor)), this.staff ? " put the conversation back in the queue" : " left the chat"],
          "control",
        );
        break;
      }
      case "participant.joined":
      case "participant.left":
        this.membership(event);
        break;
      case "session.closed":
        this.closed = true;
        this.line(event, ["Conversation closed"]);
        break;
      default:
        break;
    }
    this.render();
  }

  message(event, status) {
    const data = event.data;
    const message = this.ensure(event, data.message_id, data.role);
    message.role = data.role ?? message.role;
    message.actor = event.actor?.role === "server" ? message.actor : event.actor;
    message.runId = data.run_id ?? message.runId;
    message.ts = message.ts ?? event.ts;
    if (Array.isArray(data.parts)) {
      message.parts = data.parts.map((part) => ({ ...part }));
    }
    message.status = status;
    message.reason = data.reason ?? message.reason;
    this.draw(message);
  }

  delta(event) {
    const data = event.data;
    const message = this.ensure(event, data.message_id, "assistant");
    const gains = Array.isArray(data.parts) ? data.parts : [data];
    for (const gain of gains) {
      const index = gain.part_index ?? 0;
      const type = gain.part_type ?? "text";
      const current = message.parts[index];
      if (type === "text" || type === "reasoning") {
        if (current && current.type === type) current.text = (current.text ?? "") + (gain.text ?? "");
        else message.parts[index] = { type, text: gain.text ?? "" };
      } else {
        message.parts[index] = { type, ...(gain.data ?? {}) };
      }
    }
    if (message.status !== "streaming" && !event.compacted) message.status = "streaming";
    this.draw(message);
  }

  end(data) {
    const message = this.messages.get(data.message_id);
    if (!message) return;
    message.status = data.status ?? "complete";
    message.reason = data.reason;
    this.draw(message);
  }

  ensure(event, id, role) {
    let message = this.messages.get(id);
    if (!message) {
      const start = event.data.start_offset ?? event.offset;
      message = { id, role: role ?? "assistant", actor: event.actor, parts: [], status: "streaming", start, ts: event.ts };
      message.node = this.messageNode(message);
      this.messages.set(id, message);
      this.insert(message.node, start);
    }
    return message;
  }

  messageNode(message) {
    const text = h("div", { class: "msg__text", "data-testid": "message-text" });
    const meta = h("div", { class: "msg__meta" });
    const status = h("div", { class: "msg__status", hidden: true });
    const node = h(
      "div",
      { class: "msg", "data-testid": "message" },
      h("div", { class: "msg__avatar" }),
      h("div", { class: "msg__body" }, meta, h("div", { class: "msg__bubble" }, text), status),
    );
    Object.assign(message, { textNode: text, metaNode: meta, statusNode: status });
    return node;
  }

  draw(message) {
    const node = message.node;
    const actor = message.actor ?? {};
    const human = message.role === "assistant" && actor.role !== "ai";
    node.className = `msg${human ? " msg--human" : ""}`;
    node.dataset.role = message.role;
    node.dataset.messageId = message.id;
    node.dataset.status = message.status;
    node.dataset.author = actor.id ?? "";
    const mine = actor.id === this.me;
    const [slot] = node.getElementsByClassName("msg__avatar");
    if (message.role === "system") slot.replaceChildren();
    else slot.replaceChildren(avatar(actor));
    const who = mine ? "You" : nameOf(actor);
    fill(
      message.metaNode,
      h("span", { class: "msg__name" }, who),
      message.role === "assistant" || (!mine && actor.role !== "customer") ? badge(actor.role) : null,
      h("time", {}, clock(message.ts)),
    );
    const text = message.parts
      .filter((part) => part?.type === "text")
      .map((part) => part.text)
      .join("");
    richText(message.textNode, text);
    const labels = {
      cancelled: message.reason === "floor_lost" ? "Stopped: a human agent took over" : message.reason === "interrupted" ? "Stopped: a newer message came in" : "Stopped",
      error: message.reason === "producer_lost" ? "Interrupted: the answer was lost" : "Something went wrong",
    };
    const label = labels[message.status];
    message.statusNode.hidden = !label;
    message.statusNode.textContent = label ?? "";
  }

  tool(event) {
    if (!this.staff) return;
    const data = event.data;
    let entry = this.tools.get(data.tool_call_id);
    if (!entry) {
      const state = h("span", { class: "tool__state" }, "running…");
      const result = h("pre", { hidden: true });
      const args = h("span", { class: "tool__args" });
      const node = h(
        "details",
        { class: "tool", "data-testid": "tool-call", "data-tool": data.tool_name ?? "" },
        h("summary", {}, icon("tool"), h("span", { class: "tool__name" }, data.tool_name ?? "tool"), args, state),
        result,
      );
      entry = { node, state, result, args };
      this.tools.set(data.tool_call_id, entry);
      this.insert(node, event.offset);
    }
    if (event.type === "tool.call") {
      entry.args.textContent = short(data.input ?? {});
    } else {
      entry.node.dataset.done = "true";
      entry.state.replaceChildren(icon("check"), data.is_error ? "failed" : "done");
      entry.result.hidden = false;
      entry.result.textContent = JSON.stringify(data.output, null, 2);
    }
  }

  note(event) {
    if (!this.staff) return;
    const text = h("div", { class: "note__text", "data-testid": "note-text" }, event.data.text ?? "");
    const node = h(
      "div",
      { class: "note", "data-testid": "note", "data-author": event.actor.id },
      h(
        "div",
        { class: "note__head" },
        icon("lock"),
        "Internal note",
        h("span", { class: "note__who" }, `· ${nameOf(event.actor)} (${roleLabel(event.actor.role)}) · ${clock(event.ts)}`),
      ),
      text,
    );
    this.insert(node, event.offset);
  }

  request(event) {
    const data = event.data;
    this.requests.set(data.request_id, { request_id: data.request_id, by: event.actor.id, mode: data.mode, reason: data.reason });
    if (data.mode === "cold") this.controller = null;
    const reason = REASONS[data.reason] ?? data.reason;
    const who = event.actor.id === this.me ? "You" : nameOf(event.actor);
    const asked =
      this.staff || event.actor.id === this.me ? " asked for a human agent" : " is bringing in someone from our support team";
    this.line(event, [h("strong", {}, who), asked, reason && this.staff ? ` · ${reason}` : ""], "control");
  }

  membership(event) {
    const participant = event.data.participant ?? {};
    const joined = event.type === "participant.joined";
    if (joined) this.members.set(participant.id, participant);
    else this.members.delete(participant.id);
    this.known.set(participant.id, participant);
    // Staff see people come and go; a customer sees the control lines instead.
    const shown = this.staff && participant.role !== "ai";
    if (!shown || participant.id === this.me) return;
    const what = joined ? " joined" : " left";
    this.line(
      event,
      [h("strong", {}, nameOf(participant)), ` (${roleLabel(participant.role).toLowerCase()})`, what],
      event.visibility === "staff" ? "staff" : undefined,
    );
  }

  line(event, content, kind) {
    const node = h("div", { class: `event-line${kind ? ` event-line--${kind}` : ""}`, "data-testid": "event-line" }, h("span", {}, ...content));
    this.insert(node, event.offset);
  }

  /** Insert a node at its place in offset order (messages by start offset). */
  insert(node, key) {
    node.dataset.key = key ?? "";
    let before = this.thinking;
    for (let child = this.thinking.previousElementSibling; child; child = child.previousElementSibling) {
      if ((child.dataset.key ?? "") <= node.dataset.key) break;
      before = child;
    }
    this.list.insertBefore(node, before);
  }

  render() {
    const aiRuns = this.openAiRuns();
    const speaking = [...this.messages.values()].some((m) => m.status === "streaming" && m.actor?.role === "ai");
    this.thinking.hidden = !(aiRuns.length > 0 && !speaking);
    this.onChange(this);
  }
}

/** Keep a scrolled list at its bottom while it grows, unless the reader scrolled up. */
export function stickToBottom(list) {
  let stuck = true;
  list.addEventListener("scroll", () => {
    stuck = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  });
  const observer = new MutationObserver(() => {
    if (stuck) list.scrollTop = list.scrollHeight;
  });
  observer.observe(list, { childList: true, subtree: true, characterData: true });
  return () => observer.disconnect();
}

/**
 * One session followed live: a compact replay from the start, then live
 * events, into a {@link Transcript}; presence; the reader's cursor.
 */
export class LiveSession {
  constructor(client, id, { list, staff, identity, onChange = () => {} }) {
    this.client = client;
    this.id = id;
    this.session = client.session(id);
    this.identity = identity;
    this.onChange = onChange;
    this.info = null;
    this.presence = new Presence();
    this.transcript = new Transcript(list, {
      staff,
      me: identity.sub,
      ai: identity.ai,
      onChange: () => this.onChange(this),
    });
    this.stateSeen = undefined;
    this.cursorTimer = undefined;
    this.stopPresence = this.session.onPresence((change) => {
      this.presence.update(change);
      this.onChange(this);
    });
    this.subscription = this.session.subscribe({
      offset: "-1",
      view: "compact",
      onEvent: (event) => {
        this.takeState();
        this.transcript.apply(event);
        this.moveCursor();
      },
      onEnd: (error) => {
        if (error) console.warn("threadline demo: subscription ended", error);
      },
    });
    this.ready = this.subscription.ready.then(() => {
      this.takeState();
      this.onChange(this);
    });
  }

  /** Apply each new state snapshot (on subscribe and on every resubscribe). */
  takeState() {
    const state = this.subscription.state;
    if (!state || state === this.stateSeen) return;
    const first = this.stateSeen === undefined;
    this.stateSeen = state;
    this.info = state.session ?? this.info;
    this.presence.reset(state.presence ?? []);
    if (first) this.transcript.applyState(state);
  }

  moveCursor() {
    if (this.cursorTimer !== undefined) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      if (document.visibilityState === "visible" && this.transcript.offset !== "-1") {
        try {
          this.session.setCursor(this.transcript.offset);
        } catch {
          // closed
        }
      }
    }, 400);
  }

  /** The customer's display name. */
  customerName() {
    const attributes = this.info?.metadata?.attributes ?? {};
    const id = this.transcript.customer ?? this.info?.customer;
    return attributes.customer_name ?? this.transcript.known.get(id)?.name ?? id ?? "Customer";
  }

  /** Everyone to show: members, whoever is present, and the AI. */
  people() {
    const ids = new Set([this.transcript.ai.id, ...this.transcript.members.keys(), ...this.presence.devices.keys()]);
    return [...ids].map((id) => this.presence.actors.get(id) ?? this.transcript.actor(id));
  }

  close() {
    this.stopPresence();
    clearTimeout(this.cursorTimer);
    this.subscription.close();
  }
}
