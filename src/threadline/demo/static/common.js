// Shared by the demo pages: DOM helpers, icons, the demo sign-in, the
// client, the connection indicator, presence. Plain ES module, no build.
import { connect } from "./threadline-client.js";

// DOM

/** Make an element: h("div", {class: "x", "data-testid": "y", onclick}, child, "text"…). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "html") {
      node.innerHTML = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Replace a node's children (arrays are flattened; null, undefined and false skipped). */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

// Icons (inline SVG: no font or network needed)

const ICONS = {
  send: '<path d="M5 12h14"/><path d="m13 6 6 6-6 6"/>',
  stop: '<rect x="6" y="6" width="12" height="12" rx="2" fill="currentColor" stroke="none"/>',
  lock: '<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
  tool: '<path d="M14.7 6.3a1 1 0 0 0 0 1.4l1.6 1.6a1 1 0 0 0 1.4 0l3.77-3.77a6 6 0 0 1-7.94 7.94l-6.91 6.91a2.12 2.12 0 0 1-3-3l6.91-6.91a6 6 0 0 1 7.94-7.94l-3.76 3.76z"/>',
  check: '<path d="M20 6 9 17l-5-5"/>',
  clock: '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>',
  spark: '<path d="M12 3v4M12 17v4M3 12h4M17 12h4M6.3 6.3l2.8 2.8M14.9 14.9l2.8 2.8M6.3 17.7l2.8-2.8M14.9 9.1l2.8-2.8"/>',
  bot: '<rect x="4" y="8" width="16" height="12" rx="3"/><path d="M12 4v4"/><circle cx="9" cy="14" r="1.2" fill="currentColor"/><circle cx="15" cy="14" r="1.2" fill="currentColor"/>',
  user: '<circle cx="12" cy="8" r="4"/><path d="M4 21a8 8 0 0 1 16 0"/>',
  headset: '<path d="M4 14v-2a8 8 0 0 1 16 0v2"/><rect x="3" y="14" width="4" height="6" rx="1.5"/><rect x="17" y="14" width="4" height="6" rx="1.5"/>',
  eye: '<path d="M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12z"/><circle cx="12" cy="12" r="3"/>',
  whisper: '<path d="M21 12a8 8 0 0 1-11.6 7.1L4 21l1.9-5.4A8 8 0 1 1 21 12z"/>',
  hand: '<path d="M18 11V6a2 2 0 0 0-4 0v5"/><path d="M14 10V4a2 2 0 0 0-4 0v6"/><path d="M10 10.5V6a2 2 0 0 0-4 0v8"/><path d="M18 8a2 2 0 1 1 4 0v6a8 8 0 0 1-8 8h-2c-2.8 0-4.5-.86-5.99-2.34l-3.6-3.6a2 2 0 0 1 2.83-2.82L7 15"/>',
  back: '<path d="M9 14 4 9l5-5"/><path d="M4 9h10.5a5.5 5.5 0 0 1 0 11H11"/>',
  logout: '<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4"/><path d="m16 17 5-5-5-5"/><path d="M21 12H9"/>',
  package: '<path d="m7.5 4.27 9 5.15"/><path d="M21 8a2 2 0 0 0-1-1.73l-7-4a2 2 0 0 0-2 0l-7 4A2 2 0 0 0 3 8v8a2 2 0 0 0 1 1.73l7 4a2 2 0 0 0 2 0l7-4A2 2 0 0 0 21 16Z"/><path d="m3.3 7 8.7 5 8.7-5"/><path d="M12 22V12"/>',
  refresh: '<path d="M3 12a9 9 0 0 1 15-6.7L21 8"/><path d="M21 3v5h-5"/><path d="M21 12a9 9 0 0 1-15 6.7L3 16"/><path d="M3 21v-5h5"/>',
  inbox: '<path d="M22 12h-6l-2 3h-4l-2-3H2"/><path d="M5.45 5.11 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z"/>',
  chat: '<path d="M7 9h10M7 13h6"/><path d="M21 12a8 8 0 0 1-11.6 7.1L4 21l1.9-5.4A8 8 0 1 1 21 12z"/>',
  thread: '<path d="M4 6c4 0 4 12 8 12s4-12 8-12"/><circle cx="4" cy="6" r="1.5" fill="currentColor"/><circle cx="20" cy="6" r="1.5" fill="currentColor"/>',
};

/** An inline SVG icon by name. */
export function icon(name, extra = "") {
  const span = document.createElement("span");
  span.innerHTML = `<svg class="icon ${extra}" viewBox="0 0 24 24" aria-hidden="true">${ICONS[name] ?? ""}</svg>`;
  return span.firstElementChild;
}

// People

/** Two initials of a name. */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/);
  return ((words[0]?.[0] ?? "?") + (words.length > 1 ? words.at(-1)[0] : "")).toUpperCase();
}

/** The label of a role's badge. */
export function roleLabel(role) {
  return { ai: "AI", agent: "Human", supervisor: "Supervisor", customer: "Customer", service: "Service" }[role] ?? role;
}

/** A round avatar for an actor ({id, role, name}), with a presence dot if asked. */
export function avatar(actor, { small = false, dot = false } = {}) {
  const role = actor?.role ?? "customer";
  const node = h("span", { class: `avatar avatar--${role}${small ? " avatar--sm" : ""}`, "aria-hidden": "true" });
  if (role === "ai") node.append(icon("spark"));
  else node.append(initials(actor?.name || actor?.id));
  if (dot) node.append(h("span", { class: "presence-dot" }));
  return node;
}

/** A role badge. */
export function badge(role, text = roleLabel(role)) {
  return h("span", { class: `badge badge--${role}` }, text);
}

/** A display name for an actor. */
export function nameOf(actor) {
  return actor?.name || actor?.id || "someone";
}

// Time

export function clock(ts) {
  if (!ts) return "";
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function age(ts, now = Date.now()) {
  if (!ts) return "";
  const seconds = Math.max(0, Math.round((now - new Date(ts).getTime()) / 1000));
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

// Sign-in (demo only: POST /demo/api/sign-in mints a token for any name)

const STORE = "threadline-demo";

/** Ask the demo server for a token: {token, sub, role, name, ai}. */
export async function requestToken(role, name) {
  const response = await fetch("/demo/api/sign-in", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ role, name }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer?.error?.message ?? `sign-in failed (${response.status})`);
  return answer;
}

/**
 * The signed-in identity for this page's role: from localStorage (a reload
 * keeps you signed in), else from the sign-in card (#signin).
 */
export async function signIn(role) {
  const key = `${STORE}:${role}`;
  const saved = safeJson(localStorage.getItem(key));
  if (saved?.name) {
    try {
      return await requestToken(role, saved.name);
    } catch {
      localStorage.removeItem(key);
    }
  }
  const card = $("#signin");
  const form = $("form", card);
  const input = $("[data-testid=signin-name]", card);
  const error = $(".signin__error", card);
  card.hidden = false;
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name) {
        input.focus();
        return;
      }
      error.hidden = true;
      try {
        const identity = await requestToken(role, name);
        localStorage.setItem(key, JSON.stringify({ name: identity.name }));
        card.hidden = true;
        resolve(identity);
      } catch (exc) {
        error.textContent = exc.message;
        error.hidden = false;
      }
    });
  });
}

/** Forget this page's identity and start again. */
export function signOut(role) {
  localStorage.removeItem(`${STORE}:${role}`);
  sessionStorage.removeItem(`${STORE}:device:${role}`);
  location.reload();
}

/** This tab's stable device id (a reload keeps it; a new tab gets another). */
export function deviceId(role) {
  const key = `${STORE}:device:${role}`;
  let device = sessionStorage.getItem(key);
  if (!device) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    device = `${role}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    sessionStorage.setItem(key, device);
  }
  return device;
}

/** A Threadline client for the identity, refreshing its token by signing in again. */
export function openClient(identity) {
  const client = connect(location.origin, {
    token: identity.token,
    getToken: async () => (await requestToken(identity.role, identity.name)).token,
    device: deviceId(identity.role),
  });
  client.open(); // live before the first subscription
  return client;
}

/** Keep a [data-testid=connection] element in step with the client's connection. */
export function showConnection(client, node) {
  const labels = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };
  const show = (state) => {
    const shown = state === "live" ? "live" : state === "idle" || state === "connecting" ? "connecting" : "reconnecting";
    node.dataset.state = shown;
    node.textContent = labels[shown];
  };
  show(client.connectionState);
  client.onConnection(show);
  addEventListener("offline", () => show("reconnecting"));
}

/** Fill the page's [data-slot=me] with the identity and a sign-out button. */
export function showMe(identity, node) {
  fill(
    node,
    avatar({ role: identity.role, name: identity.name }, { small: true }),
    h("span", {}, identity.name),
    h(
      "button",
      { class: "btn btn--ghost btn--sm", type: "button", title: "Sign out", onclick: () => signOut(identity.role) },
      icon("logout"),
    ),
  );
}

function safeJson(text) {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

// Presence

/** Who is connected to a session now: participant → device → status. */
export class Presence {
  constructor() {
    this.devices = new Map();
    this.actors = new Map();
  }

  /** Start from a state snapshot's `presence` list. */
  reset(list = []) {
    this.devices.clear();
    for (const entry of list) this.update(entry);
  }

  /** Apply one presence message {actor, status}. */
  update({ actor, status }) {
    if (!actor?.id) return;
    this.actors.set(actor.id, actor);
    let devices = this.devices.get(actor.id);
    if (!devices) this.devices.set(actor.id, (devices = new Map()));
    const device = actor.device ?? "?";
    if (status === "offline") devices.delete(device);
    else devices.set(device, status);
    if (devices.size === 0) this.devices.delete(actor.id);
  }

  isPresent(id) {
    return this.devices.has(id);
  }

  isTyping(id) {
    return [...(this.devices.get(id)?.values() ?? [])].includes("typing");
  }

  /** The actors typing now, other than `me`. */
  typing(me) {
    return [...this.devices.keys()].filter((id) => id !== me && this.isTyping(id)).map((id) => this.actors.get(id));
  }
}

/** Send `typing` while the user types in `input`, `active` a moment after. */
export function reportTyping(input, setStatus) {
  let timer;
  let typing = false;
  const idle = () => {
    if (typing) setStatus("active");
    typing = false;
  };
  input.addEventListener("input", () => {
    if (!typing && input.value.trim()) {
      typing = true;
      setStatus("typing");
    }
    clearTimeout(timer);
    timer = setTimeout(idle, 2500);
  });
  return () => {
    clearTimeout(timer);
    idle();
  };
}

/** Grow a textarea with its text; Enter sends, Shift+Enter breaks the line. */
export function composer(textarea, send) {
  const fit = () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, 140)}px`;
  };
  textarea.addEventListener("input", fit);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  return fit;
}

/** Fill [data-icon] elements with their icon, and prepend one to [data-icon-before]. */
export function decorate(root = document) {
  for (const node of root.querySelectorAll("[data-icon]")) node.replaceChildren(icon(node.dataset.icon));
  for (const node of root.querySelectorAll("[data-icon-before]")) node.prepend(icon(node.dataset.iconBefore));
}
