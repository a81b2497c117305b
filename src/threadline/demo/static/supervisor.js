// The supervisor view (/demo/supervisor): every session as it is created
// (the server's threadline.sessions feed), watched live, with whispers to
// the agent (staff notes).
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
  roleLabel,
  showConnection,
  showMe,
  signIn,
} from "./common.js";
import { LiveSession, stickToBottom } from "./transcript.js";

decorate();
const sessionsList = $("[data-testid=sessions]");
const view = $("[data-testid=session-view]");
const placeholder = $("[data-slot=placeholder]");
const list = $("[data-testid=messages]", view);
const controller = $("[data-testid=controller]");
const input = $("[data-testid=whisper-input]");
const typing = $("[data-testid=typing]");

const identity = await signIn("supervisor");
const client = openClient(identity);
showConnection(client, $("[data-testid=connection]"));
showMe(identity, $("[data-slot=me]"));
stickToBottom(list);

const sessions = new Map(); // id → {id, customer, metadata, created, status}
const waiting = new Set();
let current = null;

// Every session, from the feed of new sessions.

client.session("threadline.sessions").subscribe({
  offset: "-1",
  onEvent: (event) => {
    if (event.type !== "session.created") return;
    const data = event.data;
    const id = typeof data.session === "string" ? data.session : data.session?.id;
    if (!id) return;
    sessions.set(id, {
      id,
      customer: data.customer,
      metadata: data.metadata ?? {},
      created: event.ts,
      controller: data.controller_role ?? "none",
    });
    render();
    void refresh(id);
  },
  onEnd: (error) => {
    if (error) fill(sessionsList, h("div", { class: "list__empty" }, `Cannot list sessions: ${error.message}`));
  },
});

// Which wait for a human, from the queue.

const listing = await client.api.request("GET", "/v1/sessions?waiting=agent");
for (const entry of listing.sessions) waiting.add(entry.session);
client.session(listing.queue).subscribe({
  offset: listing.offset,
  onEvent: (event) => {
    const id = event.data.session;
    if (event.type === "queue.added") waiting.add(id);
    if (event.type === "queue.removed") {
      waiting.delete(id);
      void refresh(id);
    }
    render();
  },
});

/** Who answers a session now (its state snapshot). */
async function refresh(id) {
  try {
    const state = await client.session(id).state();
    const entry = sessions.get(id);
    if (entry) entry.controller = state.controller?.role ?? "none";
    render();
  } catch {
    // gone or not reachable
  }
}

function customerName(entry) {
  return entry.metadata?.attributes?.customer_name ?? entry.customer ?? entry.id;
}

function render() {
  const entries = [...sessions.values()].sort((a, b) => String(b.created).localeCompare(String(a.created)));
  $("[data-slot=count]").textContent = String(entries.length);
  if (entries.length === 0) {
    fill(sessionsList, h("div", { class: "list__empty" }, "No conversation yet. They appear here as customers start them."));
    return;
  }
  fill(
    sessionsList,
    ...entries.map((entry) => {
      const status = waiting.has(entry.id)
        ? h("span", { class: "badge badge--waiting" }, "Waiting for a human")
        : entry.controller === "none"
          ? badge("none", "Nobody answering")
          : badge(entry.controller, entry.controller === "ai" ? "AI answering" : `${roleLabel(entry.controller)} answering`);
      return h(
        "button",
        {
          class: `item${waiting.has(entry.id) ? " item--waiting" : ""}`,
          type: "button",
          "data-testid": "session-item",
          "data-session": entry.id,
          "aria-current": String(current?.id === entry.id),
          onclick: () => open(entry.id),
        },
        avatar({ role: "customer", name: customerName(entry) }),
        h(
          "span",
          { class: "item__body" },
          h(
            "span",
            { class: "item__top" },
            h("span", { class: "item__name" }, customerName(entry)),
            h("span", { class: "item__age" }, icon("clock"), age(entry.created)),
          ),
          h("span", { class: "item__meta" }, status, h("code", {}, entry.id)),
        ),
      );
    }),
  );
}

function open(id) {
  if (current?.id === id) return;
  current?.close();
  placeholder.hidden = true;
  view.hidden = false;
  view.dataset.session = id;
  history.replaceState(null, "", `#${id}`);
  current = new LiveSession(client, id, { list, staff: true, identity, onChange: update });
  render();
  update(current);
}

function update(live) {
  if (live !== current) return;
  const transcript = live.transcript;
  const role = transcript.controllerRole;
  const holder = transcript.floor?.id ? transcript.actor(transcript.floor.id) : null;
  controller.dataset.role = role;
  fill(controller, role === "none" ? badge("none", "Nobody") : badge(role, holder ? `${nameOf(holder)} · ${roleLabel(role)}` : roleLabel(role)));
  const name = live.customerName();
  fill($("[data-slot=customer-avatar]"), name.slice(0, 1).toUpperCase() + (name.split(" ")[1]?.[0]?.toUpperCase() ?? ""));
  $("[data-slot=customer-name]").textContent = name;
  $("[data-slot=session-id]").textContent = live.id;
  const order = { customer: 0, ai: 1, agent: 2, supervisor: 3 };
  const everyone = live.people().sort((a, b) => (order[a.role] ?? 4) - (order[b.role] ?? 4));
  fill(
    $("[data-testid=participants]", view),
    h("span", { class: "participants__label" }, "In this conversation:"),
    ...everyone.map((actor) => {
      const present = actor.id === identity.sub || live.presence.isPresent(actor.id);
      return h(
        "span",
        {
          class: "participant",
          "data-testid": "participant",
          "data-role": actor.role,
          "data-id": actor.id,
          "data-present": String(present),
          title: present ? "online" : "away",
        },
        avatar(actor, { small: true, dot: true }),
        actor.id === identity.sub ? "You (unseen)" : nameOf(actor),
        badge(actor.role),
      );
    }),
  );
  const entry = sessions.get(live.id);
  if (entry && entry.controller !== role) {
    entry.controller = role;
    render();
  }
  const typists = live.presence.typing(identity.sub);
  typing.hidden = typists.length === 0;
  $("[data-slot=typing-text]", typing).textContent = typists.length ? `${typists.map(nameOf).join(" and ")} is typing…` : "";
}

async function whisper() {
  const text = input.value.trim();
  if (!text || !current) return;
  input.value = "";
  fit();
  try {
    await current.session.publish({ type: "note", data: { text } });
  } catch (exc) {
    input.value = text;
    list.append(h("div", { class: "event-line event-line--staff" }, h("span", {}, `Not sent: ${exc.message}`)));
  }
}
const fit = composer(input, whisper);
$("[data-slot=whisper]").addEventListener("submit", (event) => {
  event.preventDefault();
  void whisper();
});

setInterval(render, 15_000);
render();
const wanted = decodeURIComponent(location.hash.slice(1));
if (wanted) open(wanted);
