// The chat page: conversations, streaming answers, citations opened in their document.
// Every piece of text from the user, the server or a document is put on the page as
// text (textContent), never as HTML.

import { answerAsText, numberedSources, parseAnswer, parseEvents } from "./answer.js";
import { ApiError, keyEvents, request, requestJson } from "./api.js";
import * as store from "./conversations.js";
import { initDocuments } from "./documents.js";
import { el, reconcile, thumb } from "./dom.js";
import { initHistory } from "./history.js";
import { lang, t } from "./i18n.js";
import { closePanel, initPanel, openDocument, openPassage } from "./panel.js";

const MAX_HISTORY = 20;
const MAX_MESSAGE = 8000;
const MAX_QUESTION = 2000;
const COUNTER_FROM = 0.9;
const PHONE = window.matchMedia("(max-width: 720px)");

const $ = (id) => document.getElementById(id);
const els = {
  messages: $("messages"),
  empty: $("empty"),
  starters: $("starters"),
  form: $("composer"),
  question: $("question"),
  send: $("send"),
  stop: $("stop"),
  counter: $("counter"),
  status: $("status"),
  announce: $("announce"),
  jump: $("jump"),
  conversation: $("conversation"),
  newConversation: $("new-conversation"),
  openConversations: $("open-conversations"),
  docCount: $("doc-count"),
};

let currentId = store.currentId();
/** The question being answered: its turns, the nodes showing them, how to stop it. */
let pending = null;
let startersLoaded = false;
// Whether new text keeps the conversation scrolled to its end (not once the reader scrolls up).
let follow = true;
let lastScrollTop = 0;
/** Nodes of stored turns, by turn id, with what they were drawn from. */
const drawn = new Map();

// --- the conversation --------------------------------------------------------------

function storedTurns() {
  const conversation = store.get(currentId);
  let turns = conversation?.turns || [];
  if (pending && pending.conversationId === currentId && pending.from !== null) turns = turns.slice(0, pending.from);
  return turns;
}

function render() {
  if (currentId && !store.get(currentId) && !(pending && pending.conversationId === currentId)) {
    // Deleted (here or in another tab): the tab starts a new one.
    currentId = "";
    store.setCurrentId("");
  }
  const turns = storedTurns();
  const nodes = [];
  const counts = { user: 0, assistant: 0 };
  const lastAnswer = turns.findLastIndex((turn) => turn.role === "assistant");
  for (const [index, turn] of turns.entries()) {
    counts[turn.role] += 1;
    const context = { index, number: counts[turn.role], last: index === lastAnswer, busy: Boolean(pending) };
    nodes.push(nodeFor(turn, context));
  }
  if (pending && pending.conversationId === currentId) nodes.push(pending.userNode, pending.answerNode);
  reconcile(els.messages, nodes);
  els.empty.hidden = nodes.length > 0;
  updateJump();
}

function nodeFor(turn, context) {
  const signature = JSON.stringify([
    turn.content,
    turn.feedback,
    turn.stopped,
    context.number,
    context.last,
    context.busy,
    context.index,
  ]);
  const cached = drawn.get(turn.id);
  if (cached && cached.signature === signature) return cached.node;
  // The same element is drawn again: a finished answer stays the element that was streaming.
  const node = cached?.node || el("li", { class: `message ${turn.role}`, "data-turn": turn.id });
  if (turn.role === "user") drawUser(node, turn, context);
  else fillAnswer(node, turn, { ...context, streaming: false });
  drawn.set(turn.id, { node, signature });
  return node;
}

function drawUser(item, turn, context) {
  const show = () => {
    const parts = [el("p", { class: "who", text: t.you }), el("p", { class: "text", text: turn.content })];
    if (context && !context.busy) {
      const edit = el("button", {
        type: "button",
        class: "secondary small",
        text: t.edit,
        "aria-label": t.editLabel(context.number),
      });
      edit.addEventListener("click", () => startEdit(item, turn, context, show));
      parts.push(el("div", { class: "actions" }, edit));
    }
    item.replaceChildren(...parts);
  };
  show();
}

function startEdit(item, turn, context, show) {
  const field = el("textarea", { class: "edit-field", rows: "3", "aria-label": t.questionLabel });
  field.value = turn.content;
  const send = el("button", { type: "submit", class: "small", text: t.editSend });
  const cancel = el("button", { type: "button", class: "secondary small", text: t.editCancel });
  const form = el(
    "form",
    { class: "edit" },
    field,
    el("p", { class: "muted small-text", text: t.editHint }),
    el("div", { class: "actions" }, send, cancel),
  );
  const back = () => {
    show();
    item.querySelector("button")?.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = field.value.trim();
    if (!question || question.length > MAX_QUESTION || pending) return;
    ask(question, { from: context.index });
  });
  cancel.addEventListener("click", back);
  field.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      back();
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  item.replaceChildren(el("p", { class: "who", text: t.you }), form);
  field.focus();
  field.setSelectionRange(field.value.length, field.value.length);
}

/** The question an answer answers and the conversation before it, as the API takes them. */
function exchangeOf(turns, answerIndex) {
  const questionIndex = turns.slice(0, answerIndex).findLastIndex((turn) => turn.role === "user");
  return {
    question: questionIndex >= 0 ? turns[questionIndex].content : "",
    questionIndex,
    history: historyOf(turns.slice(0, Math.max(questionIndex, 0))),
  };
}

function historyOf(turns) {
  // A stopped answer may be empty: it is shown, but not sent back as history.
  return turns
    .filter((turn) => turn.content.trim())
    .slice(-MAX_HISTORY)
    .map(({ role, content }) => ({ role, content: content.slice(0, MAX_MESSAGE) }));
}

function whereOf(citation) {
  return citation.section ? `${citation.title} — ${citation.section}` : citation.title;
}

function fillAnswer(item, turn, context) {
  const { streaming = false, phase = "", number = 0, last = false, busy = false } = context;
  const notFound = !streaming && turn.found === false && !turn.stopped;
  item.classList.toggle("not-found", notFound);
  item.classList.toggle("streaming", streaming);
  const parts = [el("p", { class: "who", text: t.assistant })];
  if (notFound) parts.push(el("p", { class: "not-found-label", text: t.notFound }));
  if (streaming && phase !== "text") {
    parts.push(el("p", { class: "progress", text: phase === "writing" ? t.writing : t.searching }));
  }
  if (turn.content || !streaming || phase === "text") {
    const text = el("p", { class: "text" });
    for (const piece of parseAnswer(turn.content, turn.citations, { streaming })) {
      if (piece.type === "text") text.append(document.createTextNode(piece.text));
      else text.append(chip(piece.id, turn, number));
    }
    parts.push(text);
  }
  if (turn.stopped) parts.push(el("p", { class: "who", text: t.stopped }));
  const sources = numberedSources(turn.citations);
  if (sources.length) parts.push(renderSources(sources, turn));
  if (notFound && Array.isArray(turn.related) && turn.related.length) parts.push(renderRelated(turn.related));
  if (!streaming) parts.push(answerActions(item, turn, { number, last, busy, notFound }));
  item.replaceChildren(...parts);
}

function chip(id, turn, number) {
  const citation = turn.citations.find((c) => c.id === id);
  const button = el("button", {
    type: "button",
    class: "cite",
    text: String(id),
    "aria-label": citation ? t.source(id, number, whereOf(citation)) : String(id),
    "aria-controls": "panel",
    "aria-expanded": "false",
    "data-cite": String(id),
  });
  button.addEventListener("click", () => openPassage(citation, button, t.passagePanel));
  return button;
}

function renderSources(sources, turn) {
  const list = el("ol");
  for (const c of sources) {
    // One button per source, named by what it shows (its number, place and passage).
    const open = el(
      "button",
      { type: "button", class: "source-open", "aria-controls": "panel", "aria-expanded": "false", "data-cite": String(c.id) },
      el("span", { class: "source-number", text: String(c.id) }),
      el("span", { class: "source-body" }, el("span", { class: "source-where", text: whereOf(c) }), el("span", { class: "source-text", text: c.text })),
    );
    open.addEventListener("click", () => openPassage(c, open, t.passagePanel));
    list.append(el("li", { class: "source" }, open));
  }
  return el("div", { class: "sources" }, el("h3", { text: t.sources }), list);
}

// The closest passages under a refusal: offered to read, never numbered as citations.
function renderRelated(related) {
  const list = el("ul");
  for (const c of related) {
    const where = whereOf(c);
    const button = el(
      "button",
      { type: "button", class: "related-open", "aria-label": t.openRelated(where), "aria-controls": "panel", "aria-expanded": "false" },
      el("span", { class: "related-where", text: where }),
      el("span", { class: "related-text", text: c.text }),
    );
    button.addEventListener("click", () => openPassage(c, button, t.relatedPanel));
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

function answerActions(item, turn, { number, last, busy, notFound }) {
  const actions = el("div", { class: "actions" });
  if (turn.content && !notFound) {
    const copy = el("button", { type: "button", class: "secondary small", text: t.copy, "aria-label": t.copyLabel(number) });
    copy.addEventListener("click", async () => {
      const text = answerAsText(turn.content, turn.citations, `${t.sources}:`);
      if (await copyText(text)) {
        copy.textContent = t.copied;
        setTimeout(() => (copy.textContent = t.copy), 1500);
      } else showCopyFallback(item, text);
    });
    actions.append(copy);
  }
  if (turn.content && !turn.stopped) {
    for (const [rating, label, name] of [
      ["up", t.helpful, t.helpfulLabel(number)],
      ["down", t.notHelpful, t.notHelpfulLabel(number)],
    ]) {
      const button = el(
        "button",
        {
          type: "button",
          class: `secondary small rate rate-${rating}`,
          "aria-label": name,
          "aria-pressed": String(turn.feedback === rating),
          disabled: Boolean(turn.feedback),
          title: label,
        },
        thumb(rating),
      );
      button.addEventListener("click", () => openFeedback(item, turn, rating, button));
      actions.append(button);
    }
  }
  if (last && !busy) {
    const again = el("button", {
      type: "button",
      class: "secondary small",
      text: t.regenerate,
      "aria-label": t.regenerateLabel(number),
    });
    again.addEventListener("click", () => {
      const turns = storedTurns();
      const index = turns.findIndex((x) => x.id === turn.id);
      const { question, questionIndex } = exchangeOf(turns, index);
      if (question) ask(question, { from: questionIndex });
    });
    actions.append(again);
  }
  if (turn.feedback) actions.append(el("span", { class: "muted small-text thanks", text: t.feedbackThanks }));
  return actions;
}

// --- feedback ----------------------------------------------------------------------

function openFeedback(item, turn, rating, button) {
  item.querySelector(".feedback")?.remove();
  for (const other of item.querySelectorAll(".rate")) other.setAttribute("aria-pressed", String(other === button));
  const comment = el("textarea", { rows: "2", maxlength: "2000", "aria-label": t.feedbackComment, placeholder: t.feedbackComment });
  const send = el("button", { type: "submit", class: "small", text: t.feedbackSend });
  const cancel = el("button", { type: "button", class: "secondary small", text: t.feedbackCancel });
  const problem = el("p", { class: "feedback-error", role: "alert", hidden: true });
  const form = el("form", { class: "feedback" }, comment, el("div", { class: "actions" }, send, cancel), problem);
  const close = () => {
    form.remove();
    button.setAttribute("aria-pressed", "false");
    button.focus();
  };
  cancel.addEventListener("click", close);
  comment.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    const conversationId = currentId;
    const turns = storedTurns();
    const { question, history } = exchangeOf(turns, turns.findIndex((x) => x.id === turn.id));
    try {
      await requestJson("api/feedback", {
        method: "POST",
        body: {
          question,
          history,
          answer: turn.content.slice(0, MAX_MESSAGE),
          citations: turn.citations || [],
          found: turn.found !== false,
          rating,
          comment: comment.value.trim() || null,
        },
      });
      store.updateTurn(conversationId, turn.id, (stored) => (stored.feedback = rating));
      render();
      announce(t.feedbackThanks);
      els.messages.querySelector(`[data-turn="${CSS.escape(turn.id)}"] .rate-${rating}`)?.focus();
    } catch (error) {
      send.disabled = false;
      problem.textContent = t.feedbackFailed(error instanceof ApiError ? error.detail || error.message : t.unreachable);
      problem.hidden = false;
    }
  });
  item.append(form);
  comment.focus();
}

// --- copying -----------------------------------------------------------------------

async function copyText(text) {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* refused: the older way below may still work */
  }
  // Without the Clipboard API (a plain-HTTP address other than localhost), or when it refuses.
  const buffer = el("textarea", { class: "copy-buffer", readonly: true, "aria-hidden": "true" });
  buffer.value = text;
  document.body.append(buffer);
  const focused = document.activeElement;
  buffer.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  buffer.remove();
  focused?.focus?.();
  return copied;
}

function showCopyFallback(item, text) {
  item.querySelector(".copy-fallback")?.remove();
  const area = el("textarea", { readonly: true, rows: "6", "aria-label": t.copy });
  area.value = text;
  const box = el("div", { class: "copy-fallback" }, el("p", { role: "alert", text: t.copyFailed }), area);
  item.append(box);
  area.focus();
  area.select();
}

// --- status, announcements, scrolling ----------------------------------------------

function showStatus(message) {
  els.status.textContent = message;
  els.status.hidden = !message;
}

function announce(message) {
  // Emptied first, so that the same words said twice are announced twice.
  els.announce.textContent = "";
  setTimeout(() => (els.announce.textContent = message), 50);
}

function textOf(turn) {
  return parseAnswer(turn.content, turn.citations)
    .map((piece) => (piece.type === "text" ? piece.text : ` [${piece.id}]`))
    .join("");
}

function distanceToEnd() {
  const c = els.conversation;
  return c.scrollHeight - c.scrollTop - c.clientHeight;
}

function scrollToEnd() {
  els.conversation.scrollTop = els.conversation.scrollHeight;
  follow = true;
  updateJump();
}

function keepUp() {
  if (follow) scrollToEnd();
  else updateJump();
}

function updateJump() {
  els.jump.hidden = follow || distanceToEnd() < 8;
}

// On opening: the latest answer in view (its start, when it is taller than the view).
function showLatest() {
  const lastQuestion = [...els.messages.children].reverse().find((node) => node.classList.contains("user"));
  scrollToEnd();
  if (lastQuestion && lastQuestion.getBoundingClientRect().top < els.conversation.getBoundingClientRect().top) {
    lastQuestion.scrollIntoView({ block: "start" });
  }
}

// --- asking ------------------------------------------------------------------------

/** Ask `question` in the current conversation; `from` replaces the turns from that index on. */
async function ask(question, { from = null } = {}) {
  if (pending) return;
  showStatus("");
  if (!currentId) {
    currentId = store.newId();
    store.setCurrentId(currentId);
  }
  const conversationId = currentId;
  const before = store.get(conversationId)?.turns || [];
  const history = historyOf(from === null ? before : before.slice(0, from));
  const user = { id: store.newId(), role: "user", content: question };
  const answer = { id: store.newId(), role: "assistant", content: "", citations: [], related: [], found: true };
  const userItem = el("li", { class: "message user", "data-turn": user.id });
  drawUser(userItem, user, null);
  const answerItem = el("li", { class: "message assistant streaming", "data-turn": answer.id, "aria-busy": "true" });
  // Once stored, the turns are drawn in these same elements.
  drawn.set(user.id, { node: userItem, signature: "" });
  drawn.set(answer.id, { node: answerItem, signature: "" });
  pending = { conversationId, from, controller: new AbortController(), userNode: userItem, answerNode: answerItem };
  let phase = "searching";
  const number = (from === null ? before : before.slice(0, from)).filter((x) => x.role === "assistant").length + 1;
  const draw = () => fillAnswer(answerItem, answer, { streaming: true, phase, number });
  // Seen at once, before anything is asked of the server.
  draw();
  render();
  scrollToEnd();
  setBusy(true);
  announce(t.searching);
  let finished = false;
  let stopped = false;
  try {
    const response = await request("api/answer/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, history }),
      signal: pending.controller.signal,
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
        if (event === "sources") {
          answer.citations = payload.citations;
          phase = "writing";
        } else if (event === "delta") {
          answer.content += payload.text;
          phase = "text";
        } else if (event === "done") {
          Object.assign(answer, {
            content: payload.answer,
            citations: payload.citations,
            related: payload.related || [],
            found: payload.found,
          });
          finished = true;
        } else if (event === "error") throw new ApiError(t.streamError(payload.message), 500);
      }
      if (!finished) {
        draw();
        keepUp();
      }
    }
    if (!finished) throw new ApiError(t.unreachable, 0);
  } catch (error) {
    if (error.name === "AbortError") {
      stopped = true;
      Object.assign(answer, { stopped: true, found: answer.citations.length > 0 });
    } else {
      if (conversationId === currentId) {
        // The question goes back to the input, to be sent again.
        els.question.value = question;
        onInput();
      }
      showStatus(error instanceof ApiError ? error.message : t.unreachable);
    }
  } finally {
    pending = null;
    if (finished || stopped) {
      store.saveExchange(conversationId, [user, answer], from);
      answerItem.removeAttribute("aria-busy");
      if (finished) announce(answer.found === false ? `${t.notFound}. ${textOf(answer)}` : textOf(answer));
    }
    setBusy(false);
    render();
    keepUp();
  }
}

function setBusy(busy) {
  const active = document.activeElement;
  // Stop takes the place of Send while an answer comes.
  els.send.disabled = busy || tooLong();
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.question.setAttribute("aria-busy", String(busy));
  // The focused button disables itself or disappears: the focus goes on to what is next.
  if (busy && active === els.send) els.stop.focus();
  else if (!busy && active === els.stop) els.question.focus();
}

function stopPending() {
  pending?.controller.abort();
}

// --- conversations -----------------------------------------------------------------

function openConversation(id) {
  stopPending();
  currentId = id;
  store.setCurrentId(id);
  closePanel({ refocus: false });
  showStatus("");
  render();
  conversationsDrawer.refresh();
  showLatest();
  els.question.focus();
}

// --- the composer ------------------------------------------------------------------

function tooLong() {
  return els.question.value.length > MAX_QUESTION;
}

function onInput() {
  autosize();
  const length = els.question.value.length;
  const over = length - MAX_QUESTION;
  els.counter.hidden = length < MAX_QUESTION * COUNTER_FROM;
  els.counter.textContent = over > 0 ? `${t.counter(length, MAX_QUESTION)} — ${t.tooLong(over)}` : t.counter(length, MAX_QUESTION);
  els.counter.classList.toggle("over", over > 0);
  if (over > 0) els.question.setAttribute("aria-invalid", "true");
  else els.question.removeAttribute("aria-invalid");
  els.send.disabled = Boolean(pending) || over > 0;
}

function submit(text) {
  const question = text.trim();
  if (!question || pending || question.length > MAX_QUESTION) return;
  els.question.value = "";
  onInput();
  ask(question);
}

function autosize() {
  els.question.style.height = "auto";
  els.question.style.height = `${Math.min(els.question.scrollHeight, 192)}px`;
}

function placeholder() {
  els.question.placeholder = PHONE.matches ? t.placeholderShort : t.placeholder;
}

async function loadStarters() {
  try {
    const { questions, documents: count } = await requestJson(`api/starters?lang=${lang}`);
    showCount(count);
    els.starters.replaceChildren(
      ...questions.map((q) => el("li", {}, el("button", { type: "button", text: q, onclick: () => submit(q) }))),
    );
    startersLoaded = true;
  } catch (error) {
    if (error instanceof ApiError) showStatus(error.message);
  }
}

function showCount(count) {
  els.docCount.textContent = t.documents(count);
  els.docCount.hidden = false;
}

// --- wiring ------------------------------------------------------------------------

const docs = initDocuments({ openDocument, onCount: showCount });
const conversationsDrawer = initHistory({
  current: () => currentId,
  onOpen: openConversation,
  onRemoved: (id) => {
    if (id === currentId) openConversation("");
  },
});

function init() {
  document.documentElement.lang = lang;
  document.title = t.title;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t[node.dataset.i18n];
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t[node.dataset.i18nLabel]);
  placeholder();
  PHONE.addEventListener("change", placeholder);

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
  els.question.addEventListener("input", onInput);
  els.stop.addEventListener("click", stopPending);
  initPanel();
  els.newConversation.addEventListener("click", () => openConversation(""));
  els.openConversations.addEventListener("click", () => conversationsDrawer.open(els.openConversations));
  els.docCount.addEventListener("click", () => docs.open(els.docCount));
  els.conversation.addEventListener("scroll", () => {
    const top = els.conversation.scrollTop;
    if (distanceToEnd() <= 2) follow = true;
    else if (top < lastScrollTop) follow = false;
    lastScrollTop = top;
    updateJump();
  });
  els.jump.addEventListener("click", () => {
    scrollToEnd();
    els.question.focus();
  });
  keyEvents.addEventListener("key", () => {
    if (!startersLoaded) loadStarters();
  });
  store.onChange(() => {
    const atEnd = follow;
    render();
    conversationsDrawer.refresh();
    if (atEnd) scrollToEnd();
  });
  // The sheet stops above the question, whatever the question's height.
  new ResizeObserver(() => {
    const below = els.form.closest(".below");
    document.documentElement.style.setProperty("--below-height", `${below.offsetHeight}px`);
  }).observe(els.form);

  render();
  showLatest();
  onInput();
  loadStarters();
  els.question.focus();
}

init();
