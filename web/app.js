// The chat page: conversation, streaming answers, citations opened in their document.
// Every piece of text from the user, the server or a document is put on the page as
// text (textContent), never as HTML.

import { answerAsText, numberedSources, parseAnswer, parseEvents } from "./answer.js";
import { lang, t } from "./i18n.js";

const STORAGE_KEY = "assistant.conversation.v1";
const KEY_STORAGE = "assistant.apiKey";
const MAX_HISTORY = 20;

const $ = (id) => document.getElementById(id);
const els = {
  messages: $("messages"),
  empty: $("empty"),
  starters: $("starters"),
  form: $("composer"),
  question: $("question"),
  send: $("send"),
  stop: $("stop"),
  status: $("status"),
  conversation: $("conversation"),
  panel: $("panel"),
  panelEyebrow: $("panel-eyebrow"),
  panelTitle: $("panel-title"),
  panelSection: $("panel-section"),
  panelText: $("panel-text"),
  panelClose: $("panel-close"),
  newConversation: $("new-conversation"),
  docCount: $("doc-count"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyCancel: $("key-cancel"),
};

/** @type {{role: "user"|"assistant", content: string, citations?: object[], related?: object[], found?: boolean, stopped?: boolean}[]} */
let turns = load();
let controller = null;
let openChip = null;
const documents = new Map();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// --- persistence -------------------------------------------------------------------

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((m) => m && typeof m.content === "string") : [];
  } catch {
    return [];
  }
}

function save() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(turns));
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// --- rendering ---------------------------------------------------------------------

function render() {
  els.messages.replaceChildren(...turns.map((turn, index) => renderTurn(turn, index)));
  els.empty.hidden = turns.length > 0;
}

function renderTurn(turn, index) {
  if (turn.role === "user") {
    return el("li", { class: "message user" }, el("p", { class: "who", text: t.you }), el("p", { class: "text", text: turn.content }));
  }
  const item = el("li", { class: "message assistant", "data-index": String(index) });
  fillAnswer(item, turn, false);
  return item;
}

function fillAnswer(item, turn, streaming) {
  const notFound = !streaming && turn.found === false && !turn.stopped;
  item.classList.toggle("not-found", notFound);
  item.classList.toggle("streaming", streaming);
  const parts = [el("p", { class: "who", text: t.assistant })];
  if (notFound) parts.push(el("p", { class: "not-found-label", text: t.notFound }));
  const text = el("p", { class: "text" });
  for (const piece of parseAnswer(turn.content, turn.citations, { streaming })) {
    if (piece.type === "text") text.append(document.createTextNode(piece.text));
    else text.append(chip(piece.id, turn));
  }
  parts.push(text);
  if (turn.stopped) parts.push(el("p", { class: "who", text: t.stopped }));
  const sources = numberedSources(turn.citations);
  if (sources.length) parts.push(renderSources(sources, turn));
  if (notFound && Array.isArray(turn.related) && turn.related.length) parts.push(renderRelated(turn.related));
  if (!streaming && turn.content && !notFound) {
    const copy = el("button", { type: "button", class: "secondary", text: t.copy });
    copy.addEventListener("click", async () => {
      await navigator.clipboard.writeText(answerAsText(turn.content, turn.citations, `${t.sources}:`));
      copy.textContent = t.copied;
      setTimeout(() => (copy.textContent = t.copy), 1500);
    });
    parts.push(el("div", { class: "actions" }, copy));
  }
  item.replaceChildren(...parts);
}

function chip(id, turn) {
  const citation = turn.citations.find((c) => c.id === id);
  const button = el("button", {
    type: "button",
    class: "cite",
    text: String(id),
    "aria-label": t.openSource(id),
    "aria-controls": "panel",
    "aria-expanded": "false",
    "data-cite": String(id),
  });
  button.addEventListener("click", () => openCitation(citation, button));
  return button;
}

function renderSources(sources, turn) {
  const list = el("ol");
  for (const c of sources) {
    const where = c.section ? `${c.title} — ${c.section}` : c.title;
    list.append(
      el(
        "li",
        { class: "source" },
        chip(c.id, turn),
        el("div", { class: "source-body" }, el("div", { class: "source-where", text: where }), el("div", { class: "source-text", text: c.text })),
      ),
    );
  }
  return el("div", { class: "sources" }, el("h3", { text: t.sources }), list);
}

// The closest passages under a refusal: offered to read, never numbered as citations.
function renderRelated(related) {
  const list = el("ul");
  for (const c of related) {
    const where = c.section ? `${c.title} — ${c.section}` : c.title;
    const button = el(
      "button",
      { type: "button", class: "related-open", "aria-label": t.openRelated(where), "aria-controls": "panel", "aria-expanded": "false" },
      el("span", { class: "related-where", text: where }),
      el("span", { class: "related-text", text: c.text }),
    );
    button.addEventListener("click", () => openCitation(c, button, t.relatedPanel));
    list.append(el("li", { class: "related-item" }, button));
  }
  return el(
    "section",
    { class: "related", "aria-label": t.relatedTitle },
    el("h3", { text: t.relatedTitle }),
    el("p", { class: "related-hint", text: t.relatedHint }),
    list,
  );
}

function showStatus(message) {
  els.status.textContent = message;
  els.status.hidden = !message;
}

function scrollToEnd() {
  els.conversation.scrollTop = els.conversation.scrollHeight;
}

// --- the citation panel ------------------------------------------------------------

async function openCitation(citation, button, label = t.passagePanel) {
  if (!citation) return;
  if (openChip) openChip.setAttribute("aria-expanded", "false");
  openChip = button;
  button.setAttribute("aria-expanded", "true");
  els.panel.hidden = false;
  els.panelEyebrow.textContent = label;
  els.panelTitle.textContent = citation.title;
  els.panelSection.textContent = citation.section || "";
  els.panelText.replaceChildren(document.createTextNode(t.loadingDocument));
  els.panelTitle.focus();
  try {
    const doc = await fetchDocument(citation.document, citation);
    const mark = el("mark", { id: "highlight", text: doc.text.slice(citation.start, citation.end) });
    els.panelText.replaceChildren(
      document.createTextNode(doc.text.slice(0, citation.start)),
      mark,
      document.createTextNode(doc.text.slice(citation.end)),
    );
    mark.scrollIntoView({ block: "center" });
  } catch (error) {
    // Without the document, the passage itself is still shown.
    els.panelText.replaceChildren(el("mark", { id: "highlight", text: citation.text }));
    if (error instanceof ApiError) showStatus(error.message);
  }
}

function closePanel() {
  els.panel.hidden = true;
  if (openChip) {
    openChip.setAttribute("aria-expanded", "false");
    if (document.body.contains(openChip)) openChip.focus();
  }
  openChip = null;
}

async function fetchDocument(id, citation) {
  // A document replaced since it was fetched no longer holds the passage where cited.
  const cached = documents.get(id);
  if (cached && cached.text.slice(citation.start, citation.end) === citation.text) return cached;
  const response = await request(`api/documents/${id.split("/").map(encodeURIComponent).join("/")}`, { method: "GET" });
  const doc = await response.json();
  documents.set(id, doc);
  if (doc.text.slice(citation.start, citation.end) !== citation.text) throw new Error("the document has changed");
  return doc;
}

// --- talking to the server ---------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function request(path, init, retried = false) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: headers() });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(t.unreachable, 0);
  }
  if (response.ok) return response;
  let message = response.statusText;
  try {
    message = (await response.json()).error.message;
  } catch {
    /* not our JSON error: keep the status text */
  }
  if (response.status === 401 && !retried && (await askForKey())) return request(path, init, true);
  if (response.status === 401) throw new ApiError(t.unauthorized, 401);
  if (response.status === 429) throw new ApiError(t.rateLimited(response.headers.get("Retry-After") || "?"), 429);
  if (response.status === 422) throw new ApiError(t.invalid(message), 422);
  throw new ApiError(t.serverError(response.status, message), response.status);
}

function askForKey() {
  return new Promise((resolve) => {
    els.keyInput.value = "";
    const done = (ok) => {
      els.keyDialog.close();
      resolve(ok);
    };
    els.keyForm.onsubmit = (event) => {
      event.preventDefault();
      const key = els.keyInput.value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      done(Boolean(key));
    };
    els.keyCancel.onclick = () => done(false);
    els.keyDialog.showModal();
    els.keyInput.focus();
  });
}

async function ask(question) {
  showStatus("");
  // A stopped answer may be empty: it is shown, but not sent back as history.
  const history = turns
    .filter((turn) => turn.content.trim())
    .slice(-MAX_HISTORY)
    .map(({ role, content }) => ({ role, content }));
  turns.push({ role: "user", content: question });
  const answer = { role: "assistant", content: "", citations: [], related: [], found: true };
  render();
  const item = el("li", { class: "message assistant streaming", "aria-live": "polite", "aria-busy": "true" });
  els.messages.append(item);
  fillAnswer(item, answer, true);
  scrollToEnd();
  setBusy(true);
  controller = new AbortController();
  let finished = false;
  try {
    const response = await request("api/answer/stream", {
      method: "POST",
      body: JSON.stringify({ question, history }),
      signal: controller.signal,
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const parsed = parseEvents(buffer + value);
      buffer = parsed.rest;
      for (const { event, data } of parsed.events) {
        const payload = JSON.parse(data);
        if (event === "sources") answer.citations = payload.citations;
        else if (event === "delta") answer.content += payload.text;
        else if (event === "done") {
          Object.assign(answer, {
            content: payload.answer,
            citations: payload.citations,
            related: payload.related || [],
            found: payload.found,
          });
          finished = true;
        } else if (event === "error") throw new ApiError(t.streamError(payload.message), 500);
      }
      fillAnswer(item, answer, !finished);
      scrollToEnd();
    }
    if (!finished) throw new ApiError(t.unreachable, 0);
    turns.push(answer);
  } catch (error) {
    if (error.name === "AbortError") {
      turns.push({ ...answer, stopped: true, found: answer.citations.length > 0 });
    } else {
      turns.pop(); // the question goes back to the input, to be sent again
      els.question.value = question;
      showStatus(error instanceof ApiError ? error.message : t.unreachable);
    }
  } finally {
    controller = null;
    setBusy(false);
    save();
    render();
    scrollToEnd();
  }
}

function setBusy(busy) {
  els.send.disabled = busy;
  els.stop.hidden = !busy;
  els.question.setAttribute("aria-busy", String(busy));
}

async function loadStarters() {
  try {
    const response = await request(`api/starters?lang=${lang}`, { method: "GET" });
    const { questions, documents: count } = await response.json();
    els.docCount.textContent = `· ${t.documents(count)}`;
    els.starters.replaceChildren(
      ...questions.map((q) => el("li", {}, el("button", { type: "button", text: q, onclick: () => submit(q) }))),
    );
  } catch (error) {
    if (error instanceof ApiError) showStatus(error.message);
  }
}

// --- wiring ------------------------------------------------------------------------

function submit(text) {
  const question = text.trim();
  if (!question || controller) return;
  els.question.value = "";
  autosize();
  ask(question);
}

function autosize() {
  els.question.style.height = "auto";
  els.question.style.height = `${Math.min(els.question.scrollHeight, 192)}px`;
}

function init() {
  document.documentElement.lang = lang;
  document.title = t.title;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t[node.dataset.i18n];
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t[node.dataset.i18nLabel]);
  els.question.placeholder = t.placeholder;

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(els.question.value);
  });
  els.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit(els.question.value);
    }
  });
  els.question.addEventListener("input", autosize);
  els.stop.addEventListener("click", () => controller?.abort());
  els.panelClose.addEventListener("click", closePanel);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !els.panel.hidden) closePanel();
  });
  els.newConversation.addEventListener("click", () => {
    controller?.abort();
    turns = [];
    save();
    closePanel();
    showStatus("");
    render();
    els.question.focus();
  });
  render();
  loadStarters();
  els.question.focus();
}

init();
