// The side panel (a sheet on a phone): a cited passage in its document, highlighted, or a
// whole document. Document text is put on the page as text, never as HTML.

import { ApiError, requestJson } from "./api.js";
import { t } from "./i18n.js";
import { isMarkdown, renderDocument } from "./markdown.js";

const PHONE = window.matchMedia("(max-width: 720px)");
const $ = (id) => document.getElementById(id);
const els = {
  top: $("top"),
  conversation: $("conversation"),
  jump: $("jump"),
  question: $("question"),
  backdrop: $("backdrop"),
  panel: $("panel"),
  panelEyebrow: $("panel-eyebrow"),
  panelTitle: $("panel-title"),
  panelSection: $("panel-section"),
  panelNote: $("panel-note"),
  panelText: $("panel-text"),
  panelClose: $("panel-close"),
};
let panelOpener = null;
const documents = new Map();

/** Show a citation (or a closest passage) in its document; `label` says which it is. */
export async function openPassage(citation, button, label) {
  if (!citation) return;
  showPanel(button, label, citation.title, citation.section || "");
  els.panelText.replaceChildren(document.createTextNode(t.loadingDocument));
  const holds = (doc) => doc.text.slice(citation.start, citation.end) === citation.text;
  try {
    let doc = await fetchDocument(citation.document);
    // A document replaced since it was read may have moved the passage: read it again.
    if (!holds(doc)) doc = await fetchDocument(citation.document, { fresh: true });
    if (!holds(doc)) throw new Error("changed");
    showText(doc, { start: citation.start, end: citation.end });
  } catch (error) {
    // Without the document (or with a changed one), the passage itself is still shown.
    const { node } = renderDocument(citation.text, { highlight: { start: 0, end: citation.text.length } });
    els.panelText.replaceChildren(node);
    els.panelNote.textContent = error instanceof ApiError ? error.message : t.documentChanged;
    els.panelNote.hidden = false;
  }
}

/** Show a whole document (from the documents drawer). */
export async function openDocument(summary, opener) {
  showPanel(opener, t.documentPanel, summary.title, "");
  els.panelText.replaceChildren(document.createTextNode(t.loadingDocument));
  try {
    showText(await fetchDocument(summary.id, { fresh: true }), null);
  } catch (error) {
    els.panelText.replaceChildren();
    els.panelNote.textContent = error instanceof ApiError ? error.message : t.unreachable;
    els.panelNote.hidden = false;
  }
}

function showPanel(opener, label, title, section) {
  if (panelOpener?.hasAttribute?.("aria-expanded")) panelOpener.setAttribute("aria-expanded", "false");
  panelOpener = opener;
  if (opener?.hasAttribute?.("aria-expanded")) opener.setAttribute("aria-expanded", "true");
  els.panel.hidden = false;
  els.panelEyebrow.textContent = label;
  els.panelTitle.textContent = title;
  els.panelSection.textContent = section;
  els.panelNote.hidden = true;
  sheetMode();
  els.panelTitle.focus();
}

function showText(doc, highlight) {
  const { node, marks } = renderDocument(doc.text, { markdown: isMarkdown(doc.id), highlight });
  els.panelText.replaceChildren(node);
  if (marks.length) marks[0].scrollIntoView({ block: "center" });
  else els.panelText.scrollTop = 0;
}

// On a phone the panel is a sheet over the conversation, above the question: what it
// covers is dimmed, out of reach of the keyboard, and a tap on it closes the sheet.
function sheetMode() {
  const sheet = PHONE.matches && !els.panel.hidden;
  els.backdrop.hidden = !sheet;
  els.top.inert = sheet;
  els.conversation.inert = sheet;
  els.jump.inert = sheet; // "Jump to latest" sits under the sheet, above the question
}

/** Close the panel; the focus goes back where it came from (or to the question). */
export function closePanel({ refocus = true } = {}) {
  if (els.panel.hidden) return;
  els.panel.hidden = true;
  sheetMode();
  if (panelOpener?.hasAttribute?.("aria-expanded")) panelOpener.setAttribute("aria-expanded", "false");
  if (refocus && panelOpener && document.body.contains(panelOpener)) panelOpener.focus();
  else if (refocus) els.question.focus();
  panelOpener = null;
}

async function fetchDocument(id, { fresh = false } = {}) {
  const cached = documents.get(id);
  if (cached && !fresh) return cached;
  const doc = await requestJson(`api/documents/${id.split("/").map(encodeURIComponent).join("/")}`);
  documents.set(id, doc);
  return doc;
}

/** Wire the panel: its close button, the sheet's backdrop, Escape. */
export function initPanel() {
  els.panelClose.addEventListener("click", () => closePanel());
  els.backdrop.addEventListener("click", () => closePanel());
  PHONE.addEventListener("change", sheetMode);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing || els.panel.hidden || event.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    // Escape while typing a question is not meant for the panel the reader is reading.
    const typing = event.target instanceof HTMLElement && event.target.matches("textarea, input");
    if (typing && !els.panel.contains(event.target)) return;
    closePanel();
  });
}
