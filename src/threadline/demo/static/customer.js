// The customer chat widget (/demo): find my conversation (my sessions) or
// start one on the first message; stream the AI's answers; stop them; see
// who is here and who is typing.
import {
  $,
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
  showConnection,
  signIn,
  signOut,
} from "./common.js";
import { LiveSession, stickToBottom } from "./transcript.js";

decorate();
const list = $("[data-testid=messages]");
const input = $("[data-testid=composer-input]");
const sendButton = $("[data-testid=composer-send]");
const stopButton = $("[data-testid=stop]");
const form = $("[data-slot=composer]");
const participants = $("[data-testid=participants]");
const typing = $("[data-testid=typing]");
const sessionLabel = $("[data-testid=session-id]");
const subtitle = $("[data-slot=subtitle]");

const SUGGESTIONS = ["Where is my order #1234?", "Part of my order never arrived", "Can I talk to a person?"];

const identity = await signIn("customer");
const client = openClient(identity);
showConnection(client, $("[data-testid=connection]"));
$("[data-action=sign-out]").hidden = false;
$("[data-action=sign-out]").addEventListener("click", () => signOut("customer"));
$("[data-slot=who]").textContent = `Signed in as ${identity.name}`;
stickToBottom(list);

let live = null;
let opening = null;
const stopTyping = reportTyping(input, (status) => live?.session.setPresence(status));

function emptyState() {
  const node = h(
    "div",
    { class: "empty", "data-slot": "empty" },
    h("div", { class: "empty__icon" }, icon("chat")),
    h("h3", {}, `Hi ${identity.name.split(" ")[0]}! How can we help?`),
    h("p", {}, "Ask about an order, a delivery or a refund. Ada answers right away."),
    h(
      "div",
      { class: "suggestions" },
      SUGGESTIONS.map((text) =>
        h("button", { class: "suggestion", type: "button", onclick: () => send(text) }, text),
      ),
    ),
  );
  list.replaceChildren(node);
}

/** Follow a session: history, then live. */
function open(id) {
  live?.close();
  sessionLabel.textContent = id;
  live = new LiveSession(client, id, { list, staff: false, identity, onChange: update });
  return live.ready;
}

/** Redraw what depends on the session's state. */
function update(session) {
  const transcript = session.transcript;
  const streaming = transcript.openAiRuns().length > 0 || transcript.streaming();
  stopButton.hidden = !streaming;
  // Who is here.
  const people = session.people().filter((actor) => actor.role !== "supervisor");
  people.sort((a, b) => rank(a) - rank(b));
  fill(
    participants,
    h("span", { class: "participants__label" }, "In this chat:"),
    ...people.map((actor) => {
      const me = actor.id === identity.sub;
      const present = me || session.presence.isPresent(actor.id);
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
        me ? "You" : nameOf(actor),
        me ? null : badge(actor.role),
      );
    }),
  );
  // Who is typing (someone else).
  const typists = session.presence.typing(identity.sub).filter((actor) => actor?.role !== "supervisor");
  typing.hidden = typists.length === 0;
  $("[data-slot=typing-text]", typing).textContent = typists.length
    ? `${typists.map(nameOf).join(" and ")} ${typists.length > 1 ? "are" : "is"} typing…`
    : "";
  // Who answers.
  const floor = transcript.floor;
  if (transcript.pending().length > 0 && floor?.role === "ai") subtitle.textContent = "Connecting you with a human agent…";
  else if (floor && floor.role !== "ai") subtitle.textContent = `${nameOf(transcript.actor(floor.id))} (human agent) is helping you`;
  else subtitle.textContent = `${identity.ai.name} (AI) · replies instantly`;
}

function rank(actor) {
  return { ai: 0, agent: 1, supervisor: 2, customer: 3 }[actor.role] ?? 4;
}

async function send(text) {
  text = text.trim();
  if (!text) return;
  input.value = "";
  input.dispatchEvent(new Event("input"));
  stopTyping();
  try {
    if (live === null) {
      opening ??= (async () => {
        const id = `order-${Math.random().toString(36).slice(2, 8)}`;
        await client.createSession(id, {
          metadata: { channel: "web", attributes: { customer_name: identity.name } },
        });
        await open(id);
      })();
      await opening;
    }
    await live.session.sendMessage(text);
  } catch (exc) {
    console.error(exc);
    input.value = text;
    alertLine(`Your message was not sent: ${exc.message}`);
  }
  input.focus();
}

function alertLine(text) {
  list.append(h("div", { class: "event-line event-line--staff" }, h("span", {}, text)));
}

const fit = composer(input, () => send(input.value));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  send(input.value).then(fit);
});
sendButton.disabled = false;
stopButton.addEventListener("click", async () => {
  if (!live) return;
  stopButton.disabled = true;
  try {
    const runs = live.transcript.openAiRuns();
    await Promise.all(
      runs.map((run) => live.session.publish({ type: "run.cancel", data: { run_id: run, reason: "customer_stop" } })),
    );
  } catch (exc) {
    console.warn("stop:", exc);
  } finally {
    stopButton.disabled = false;
  }
});

// A new tab, a reload or another device: find the conversation.
let mine = [];
try {
  mine = await client.mySessions();
} catch (exc) {
  console.warn("my sessions:", exc);
}
mine.sort((a, b) => String(b.session.created).localeCompare(String(a.session.created)));
if (mine.length > 0) {
  await open(mine[0].session.id);
} else {
  emptyState();
}
input.focus();
