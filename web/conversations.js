// Conversations kept in the browser (localStorage), shared by every tab of the page.
//
// Every change reads what is stored, changes it and writes it back at once, so that a tab
// never writes over what another tab added since it last read. Which conversation a tab
// shows is the tab's own (sessionStorage): two tabs may show two conversations.

const KEY = "assistant.conversations.v2";
const OLD_KEY = "assistant.conversation.v1";
const CURRENT_KEY = "assistant.current";
const TITLE_CHARS = 60;

/**
 * @typedef {{id: string, role: "user"|"assistant", content: string, citations?: object[],
 *   related?: object[], found?: boolean, stopped?: boolean, feedback?: "up"|"down"}} Turn
 * @typedef {{id: string, title?: string, created: number, updated: number, turns: Turn[]}} Conversation
 */

export function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function valid(conversation) {
  return conversation && typeof conversation.id === "string" && Array.isArray(conversation.turns);
}

/** Every stored conversation, newest first. */
export function all() {
  let list = [];
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "null");
    list = Array.isArray(saved) ? saved.filter(valid) : migrate();
  } catch {
    list = [];
  }
  for (const c of list) c.turns = c.turns.filter((turn) => turn && typeof turn.content === "string");
  return list.sort((a, b) => b.updated - a.updated);
}

// The page once kept a single conversation under another key: it becomes the first of the list.
function migrate() {
  try {
    const turns = JSON.parse(localStorage.getItem(OLD_KEY) || "[]");
    if (!Array.isArray(turns) || !turns.length) return [];
    const now = Date.now();
    const list = [{ id: newId(), created: now, updated: now, turns: turns.map((turn) => ({ ...turn, id: newId() })) }];
    write(list);
    localStorage.removeItem(OLD_KEY);
    return list;
  } catch {
    return [];
  }
}

function write(list) {
  const kept = [...list].sort((a, b) => b.updated - a.updated);
  for (;;) {
    try {
      localStorage.setItem(KEY, JSON.stringify(kept));
      return;
    } catch (error) {
      // The browser's quota is reached: the oldest conversations make room for the newer.
      if (kept.length <= 1) throw error;
      kept.pop();
    }
  }
}

/** Change the stored list with `change(list)` (which edits it in place), and store it. */
export function update(change) {
  const list = all();
  change(list);
  write(list);
  return list;
}

/** One conversation, or undefined. */
export function get(id) {
  return id ? all().find((c) => c.id === id) : undefined;
}

/**
 * Store a question and its answer in conversation `id` (created when missing), after the
 * turns stored there now, or in place of the turns from index `from` on (an edited or
 * regenerated question).
 */
export function saveExchange(id, turns, from = null) {
  update((list) => {
    let conversation = list.find((c) => c.id === id);
    if (!conversation) {
      conversation = { id, created: Date.now(), updated: Date.now(), turns: [] };
      list.push(conversation);
    }
    const kept = from === null ? conversation.turns : conversation.turns.slice(0, from);
    conversation.turns = [...kept, ...turns];
    conversation.updated = Date.now();
  });
}

/** Change one turn of a conversation (its feedback, say), wherever it now stands. */
export function updateTurn(id, turnId, change) {
  update((list) => {
    const turn = list.find((c) => c.id === id)?.turns.find((t) => t.id === turnId);
    if (turn) change(turn);
  });
}

export function rename(id, title) {
  update((list) => {
    const conversation = list.find((c) => c.id === id);
    if (conversation) conversation.title = title.trim() || undefined;
  });
}

/** Remove a conversation; returns it, to put back with `restore`. */
export function remove(id) {
  let removed;
  update((list) => {
    const index = list.findIndex((c) => c.id === id);
    if (index >= 0) [removed] = list.splice(index, 1);
  });
  return removed;
}

export function restore(conversation) {
  update((list) => {
    if (!list.some((c) => c.id === conversation.id)) list.push(conversation);
  });
}

/** What a conversation is called: its given title, else its first question, shortened. */
export function title(conversation, fallback) {
  if (conversation?.title) return conversation.title;
  const first = conversation?.turns.find((turn) => turn.role === "user");
  if (!first) return fallback;
  const text = first.content.replace(/\s+/g, " ").trim();
  return text.length > TITLE_CHARS ? `${text.slice(0, TITLE_CHARS - 1).trimEnd()}…` : text;
}

/**
 * The conversation this tab shows: the one it showed before a reload, "" for a new one, or
 * (a tab opened afresh) the most recent.
 */
export function currentId() {
  const saved = sessionStorage.getItem(CURRENT_KEY);
  if (saved !== null) return saved;
  return all()[0]?.id || "";
}

export function setCurrentId(id) {
  sessionStorage.setItem(CURRENT_KEY, id);
}

/** Call `listener()` when another tab changes the stored conversations. */
export function onChange(listener) {
  window.addEventListener("storage", (event) => {
    if (event.key === KEY || event.key === null) listener();
  });
}
