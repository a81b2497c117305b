// The agent console (/demo/agent): the live waiting queue, a session's full
// live history (messages, staff notes, tool calls), take over, hand back.
import {
  $,
  age,
  avatar,
  badge,
  composer,
  decorate,
  fill,
  h,
  icon,
  nameOf,
  openClient,
  reportTyping,
  roleLabel,
  showConnection,
  showMe,
  signIn,
} from "./common.js";
import { LiveSession, stickToBottom } from "./transcript.js";

decorate();
const queueList = $("[data-testid=queue]");
const mineList = $("[data-slot=mine]");
const view = $("[data-testid=session-view]");
const placeholder = $("[data-slot=placeholder]");
const list = $("[data-testid=messages]", view);
const input = $("[data-testid=composer-input]");
const sendButton = $("[data-testid=composer-send]");
const takeOver = $("[data-testid=take-over]");
const handBack = $("[data-testid=hand-back]");
const controller = $("[data-testid=controller]");
const hint = $("[data-slot=composer-hint]");
const typing = $("[data-testid=typing]");
const people = $("[data-testid=participants]");
const facts = $("[data-slot=facts]");

const REASONS = {
  refund_over_limit: "Refund over limit",
  customer_request: "Asked for a person",
  model_escalation: "AI needs a human",
};

const identity = await signIn("agent");
const client = openClient(identity);
showConnection(client, $("[data-testid=connection]"));
showMe(identity, $("[data-slot=me]"));
stickToBottom(list);

let current = null;
const stopTyping = reportTyping(input, (status) => current?.session.setPresence(status));
const queue = new Map();
let mine = [];

// The waiting queue: list it, then follow it from the listed offset.

async function loadQueue() {
  const listing = await client.api.request("GET", "/v1/sessions?waiting=agent");
  for (const entry of listing.sessions) added(entry);
  renderQueue();
  client.session(listing.queue).subscribe({
    offset: listing.offset,
    onEvent: (event) => {
      if (event.type === "queue.added") added({ ...event.data, since: event.ts, offset: event.offset });
      else if (event.type === "queue.removed") {
        queue.delete(event.data.session);
        void loadMine();
      }
      renderQueue();
    },
  });
}

function added(entry) {
  queue.set(entry.session, entry);
  void enrich(entry);
}

/** Find why the session waits and the AI's summary: its last request and note. */
async function enrich(entry) {
  try {
    const events = await client.api.request(
      "GET",
      `/v1/sessions/${encodeURIComponent(entry.session)}/events?offset=-1&view=compact`,
    );
    for (const event of events) {
      if (event.type === "control.request") entry.why = event.data.reason;
      // The AI's hand-over summary, else the latest whisper.
      if (event.type === "note" && (event.actor?.role === "ai" || !entry.summary)) {
        entry.preview = event.data.text;
        entry.summary = event.actor?.role === "ai";
      }
      if (event.actor?.role === "customer" && event.actor.name) entry.name ??= event.actor.name;
    }
  } catch (exc) {
    console.warn("queue entry", entry.session, exc);
  }
  renderQueue();
}

function customerName(entry) {
  return entry.metadata?.attributes?.customer_name ?? entry.name ?? entry.customer ?? entry.session;
}

function renderQueue() {
  const entries = [...queue.values()].sort((a, b) => String(a.since).localeCompare(String(b.since)));
  const count = $("[data-slot=queue-count]");
  count.textContent = String(entries.length);
  count.classList.toggle("count--hot", entries.length > 0);
  if (entries.length === 0) {
    fill(queueList, h("div", { class: "list__empty" }, "Nobody is waiting. Escalations appear here live."));
    return;
  }
  fill(
    queueList,
    ...entries.map((entry) =>
      h(
        "button",
        {
          class: "item item--waiting",
          type: "button",
          "data-testid": "queue-item",
          "data-session": entry.session,
          "aria-current": String(current?.id === entry.session),
          onclick: () => open(entry.session),
        },
        avatar({ role: "customer", name: customerName(entry) }),
        h(
          "span",
          { class: "item__body" },
          h(
            "span",
            { class: "item__top" },
            h("span", { class: "item__name" }, customerName(entry)),
            h("span", { class: "item__age" }, icon("clock"), age(entry.since)),
          ),
          h(
            "span",
            { class: "item__meta" },
            h("span", { class: "badge badge--waiting" }, REASONS[entry.why] ?? (entry.reason === "released" ? "Released" : "Needs a human")),
            h("code", {}, entry.session),
          ),
          entry.preview ? h("span", { class: "item__preview" }, entry.preview) : null,
        ),
      ),
    ),
  );
}

// The agent's own conversations (my sessions).

async function loadMine() {
  try {
    mine = await client.mySessions();
  } catch (exc) {
    console.warn("my sessions", exc);
    return;
  }
  renderMine();
}

function renderMine() {
  const items = mine
    .filter((item) => !queue.has(item.session.id))
    .sort((a, b) => String(b.session.created).localeCompare(String(a.session.created)));
  if (items.length === 0) {
    fill(mineList, h("div", { class: "list__empty" }, "Conversations you take over stay here."));
    return;
  }
  fill(
    mineList,
    ...items.map((item) => {
      const name = item.session.metadata?.attributes?.customer_name ?? item.session.customer ?? item.session.id;
      const role = item.controller?.role ?? "none";
      return h(
        "button",
        {
          class: "item",
          type: "button",
          "data-testid": "conversation-item",
          "data-session": item.session.id,
          "aria-current": String(current?.id === item.session.id),
          onclick: () => open(item.session.id),
        },
        avatar({ role: "customer", name }),
        h(
          "span",
          { class: "item__body" },
          h(
            "span",
            { class: "item__top" },
            h("span", { class: "item__name" }, name),
            item.unread ? h("span", { class: "count count--hot" }, String(item.unread)) : null,
          ),
          h(
            "span",
            { class: "item__meta" },
            item.controller?.id === identity.sub ? badge("agent", "You") : badge(role === "none" ? "none" : role, role === "none" ? "Nobody" : roleLabel(role)),
            h("code", {}, item.session.id),
          ),
        ),
      );
    }),
  );
}

// One conversation.

function open(id) {
  if (current?.id === id) return;
  current?.close();
  stopTyping();
  placeholder.hidden = true;
  view.hidden = false;
  view.dataset.session = id;
  for (const section of document.querySelectorAll("[data-slot=when-open]")) section.hidden = false;
  history.replaceState(null, "", `#${id}`);
  current = new LiveSession(client, id, { list, staff: true, identity, onChange: update });
  renderQueue();
  renderMine();
  update(current);
}

function update(live) {
  if (live !== current) return;
  const transcript = live.transcript;
  const role = transcript.controllerRole;
  const me = transcript.holds(identity.sub);
  const holder = transcript.floor?.id ? transcript.actor(transcript.floor.id) : null;
  controller.dataset.role = role;
  fill(
    controller,
    role === "none"
      ? badge("none", "Nobody")
      : me
        ? badge("agent", "You")
        : badge(role, holder ? `${nameOf(holder)} · ${roleLabel(role)}` : roleLabel(role)),
  );
  const pending = transcript.pending();
  takeOver.hidden = me;
  takeOver.disabled = pending.length === 0 || transcript.closed;
  takeOver.classList.toggle("btn--human", !takeOver.disabled);
  handBack.hidden = !me;
  handBack.disabled = transcript.closed;
  input.disabled = !me;
  sendButton.disabled = !me;
  input.placeholder = me ? `Reply to ${live.customerName()}…` : "Take over to reply";
  hint.replaceChildren(
    icon(me ? "headset" : pending.length ? "hand" : "spark"),
    me
      ? "You're answering. The AI stays silent until you hand back."
      : pending.length
        ? "The AI asked for a human. Take over to answer the customer yourself."
        : role === "ai"
          ? "The AI is handling this conversation."
          : role === "none"
            ? "Nobody is answering."
            : `${holder ? nameOf(holder) : "A colleague"} is answering.`,
  );
  // Header and details.
  const name = live.customerName();
  fill($("[data-slot=customer-avatar]"), name.slice(0, 1).toUpperCase() + (name.split(" ")[1]?.[0]?.toUpperCase() ?? ""));
  $("[data-slot=customer-name]").textContent = name;
  $("[data-slot=session-id]").textContent = live.id;
  const everyone = live.people();
  everyone.sort((a, b) => ({ customer: 0, ai: 1, agent: 2, supervisor: 3 })[a.role] - ({ customer: 0, ai: 1, agent: 2, supervisor: 3 })[b.role]);
  fill(
    people,
    ...everyone.map((actor) => {
      const present = actor.id === identity.sub || live.presence.isPresent(actor.id);
      return h(
        "div",
        {
          class: "person",
          "data-testid": "participant",
          "data-role": actor.role,
          "data-id": actor.id,
          "data-present": String(present),
        },
        avatar(actor, { small: true, dot: true }),
        h("span", { class: "person__name" }, actor.id === identity.sub ? `${nameOf(actor)} (you)` : nameOf(actor), h("small", {}, present ? "online" : "away")),
        badge(actor.role),
      );
    }),
  );
  const info = live.info ?? {};
  fill(
    facts,
    h("dt", {}, "Session"),
    h("dd", {}, h("code", {}, live.id)),
    h("dt", {}, "Customer"),
    h("dd", {}, info.customer ?? "—"),
    h("dt", {}, "Channel"),
    h("dd", {}, info.metadata?.channel ?? "—"),
    h("dt", {}, "Started"),
    h("dd", {}, info.created ? new Date(info.created).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "—"),
    h("dt", {}, "Messages"),
    h("dd", {}, String(transcript.messages.size)),
  );
  const typists = live.presence.typing(identity.sub);
  typing.hidden = typists.length === 0;
  $("[data-slot=typing-text]", typing).textContent = typists.length ? `${typists.map(nameOf).join(" and ")} is typing…` : "";
}

async function act(button, draft) {
  if (!current) return;
  button.disabled = true;
  try {
    await current.session.publish(draft);
  } catch (exc) {
    console.warn(exc);
    list.append(h("div", { class: "event-line event-line--staff" }, h("span", {}, exc.message)));
  }
  update(current);
  void loadMine();
}

takeOver.addEventListener("click", () => {
  const [request] = current?.transcript.pending() ?? [];
  if (request) void act(takeOver, { type: "control.accept", data: { request_id: request.request_id } });
});
handBack.addEventListener("click", () => {
  void act(handBack, { type: "control.release", data: { to: identity.ai.id } });
});

async function send() {
  const text = input.value.trim();
  if (!text || !current || input.disabled) return;
  input.value = "";
  fit();
  stopTyping();
  try {
    await current.session.sendMessage(text);
  } catch (exc) {
    input.value = text;
    list.append(h("div", { class: "event-line event-line--staff" }, h("span", {}, `Not sent: ${exc.message}`)));
  }
}
const fit = composer(input, send);
$("[data-slot=composer]").addEventListener("submit", (event) => {
  event.preventDefault();
  void send();
});

setInterval(() => {
  renderQueue();
  void loadMine();
}, 15_000);

await Promise.all([loadQueue(), loadMine()]);
const wanted = decodeURIComponent(location.hash.slice(1));
if (wanted) open(wanted);
