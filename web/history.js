// The conversations drawer: every conversation kept in this browser, newest first; open,
// rename, delete (with a moment to undo).

import * as store from "./conversations.js";
import { closeOnBackdrop, el } from "./dom.js";
import { t, when } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const UNDO_MS = 10_000;

/**
 * Wire the drawer. `current()` is the id shown in this tab; `onOpen(id)` shows a
 * conversation ("" for a new one); `onRemoved(id)` is told when one is deleted.
 */
export function initHistory({ current, onOpen, onRemoved }) {
  const drawer = $("conversations-drawer");
  const list = $("conversation-list");
  const notice = $("conversations-notice");
  let removed = null;
  let timer = 0;
  let opener = null;

  function render() {
    const conversations = store.all().filter((c) => c.turns.length);
    $("conversations-empty").hidden = conversations.length > 0;
    list.replaceChildren(...conversations.map((c) => item(c)));
  }

  function item(conversation) {
    const name = store.title(conversation, t.untitled);
    const isCurrent = conversation.id === current();
    const open = el(
      "button",
      { type: "button", class: "conversation-open", "aria-current": isCurrent ? "true" : null },
      el("span", { class: "conversation-title", text: name }),
      el("span", { class: "conversation-when", text: when(new Date(conversation.updated).toISOString()) }),
    );
    open.addEventListener("click", () => {
      drawer.close();
      onOpen(conversation.id);
    });
    const rename = el("button", { type: "button", class: "secondary small", text: t.rename, "aria-label": t.renameLabel(name) });
    const remove = el("button", {
      type: "button",
      class: "secondary danger small",
      text: t.delete,
      "aria-label": t.deleteLabel(name),
    });
    const row = el("li", { class: "conversation-item", "data-id": conversation.id }, open, el("div", { class: "row-actions" }, rename, remove));
    rename.addEventListener("click", () => startRename(row, conversation, name));
    remove.addEventListener("click", () => {
      const gone = store.remove(conversation.id);
      if (!gone) return;
      removed = gone;
      $("conversations-notice-text").textContent = t.deleted(name);
      notice.hidden = false;
      clearTimeout(timer);
      timer = setTimeout(forget, UNDO_MS);
      onRemoved(conversation.id);
      render();
      $("conversations-undo").focus();
    });
    return row;
  }

  function startRename(row, conversation, name) {
    const field = el("input", { type: "text", class: "rename-field", "aria-label": t.renameField, maxlength: "120" });
    field.value = name;
    const save = el("button", { type: "submit", class: "small", text: t.save });
    const cancel = el("button", { type: "button", class: "secondary small", text: t.editCancel });
    const form = el("form", { class: "rename" }, field, save, cancel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      store.rename(conversation.id, field.value);
      render();
      list.querySelector(`[data-id="${CSS.escape(conversation.id)}"] .conversation-open`)?.focus();
    });
    const back = () => {
      render();
      list.querySelector(`[data-id="${CSS.escape(conversation.id)}"] .conversation-open`)?.focus();
    };
    cancel.addEventListener("click", back);
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.isComposing) {
        // Escape leaves the renaming, not the drawer.
        event.preventDefault();
        event.stopPropagation();
        back();
      }
    });
    row.replaceChildren(form);
    field.focus();
    field.select();
  }

  function forget() {
    removed = null;
    notice.hidden = true;
  }

  $("conversations-undo").addEventListener("click", () => {
    if (!removed) return;
    store.restore(removed);
    const id = removed.id;
    clearTimeout(timer);
    forget();
    render();
    list.querySelector(`[data-id="${CSS.escape(id)}"] .conversation-open`)?.focus();
  });
  $("drawer-new").addEventListener("click", () => {
    drawer.close();
    onOpen("");
  });
  drawer.querySelector(".drawer-close").addEventListener("click", () => drawer.close());
  closeOnBackdrop(drawer);
  drawer.addEventListener("close", () => {
    if (opener && document.body.contains(opener) && document.activeElement === document.body) opener.focus();
  });

  return {
    open(from) {
      opener = from || document.activeElement;
      render();
      drawer.showModal();
      (list.querySelector("[aria-current=true]") || $("drawer-new")).focus();
    },
    refresh() {
      if (drawer.open) render();
    },
  };
}
