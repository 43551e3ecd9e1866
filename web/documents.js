// The documents drawer: what is indexed, each document to open; with an admin key, uploads
// (several files, dropped or chosen, with progress) and deletions (confirmed).

import { ApiError, askForKey, mayChangeDocuments, requestJson, upload } from "./api.js";
import { closeOnBackdrop, el } from "./dom.js";
import { t, when } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/**
 * Wire the drawer. `openDocument(summary, opener)` shows a document; `onCount(n)` is told
 * the number of documents whenever the list is read.
 */
export function initDocuments({ openDocument, onCount }) {
  const drawer = $("documents-drawer");
  const list = $("document-list");
  const error = $("documents-error");
  const notice = $("documents-notice");
  const progress = $("upload-progress");
  const uploadStatus = $("upload-status");
  const results = $("upload-results");
  const drop = $("drop");
  const input = $("file-input");
  let admin = false;
  let busy = false;
  let opener = null;

  const showError = (message) => {
    error.textContent = message;
    error.hidden = !message;
  };
  const showNotice = (message) => {
    notice.textContent = message;
    notice.hidden = !message;
  };

  async function refresh() {
    $("documents-loading").hidden = list.children.length > 0;
    try {
      const { documents } = await requestJson("api/documents");
      onCount(documents.length);
      render(documents);
    } catch (problem) {
      if (problem instanceof ApiError) showError(problem.message);
    } finally {
      $("documents-loading").hidden = true;
    }
  }

  function render(documents) {
    $("documents-empty").hidden = documents.length > 0;
    const newest = [...documents].sort((a, b) => String(b.ingested_at).localeCompare(String(a.ingested_at)));
    list.replaceChildren(
      ...newest.map((doc) => {
        const meta = [t.passages(doc.passages), t.added(when(doc.ingested_at))].filter(Boolean).join(" · ");
        const open = el(
          "button",
          { type: "button", class: "doc-open", "aria-label": `${t.openDocument(doc.title)}, ${meta}` },
          el("span", { class: "doc-title", text: doc.title }),
          el("span", { class: "doc-meta", text: meta }),
          el("span", { class: "doc-id", text: doc.source || doc.id }),
        );
        open.addEventListener("click", () => {
          drawer.close();
          openDocument(doc, opener);
        });
        const item = el("li", { class: "doc", "data-id": doc.id }, open);
        if (admin) {
          const remove = el("button", {
            type: "button",
            class: "secondary danger small",
            text: t.delete,
            "aria-label": t.deleteDocument(doc.title),
          });
          remove.addEventListener("click", () => confirmDelete(doc, remove));
          item.append(remove);
        }
        return item;
      }),
    );
  }

  async function checkAdmin() {
    admin = await mayChangeDocuments();
    $("upload").hidden = !admin;
    $("admin-hint").hidden = admin;
  }

  async function open(from) {
    opener = from || document.activeElement;
    showError("");
    showNotice("");
    if (!drawer.open) drawer.showModal();
    await checkAdmin();
    await refresh();
  }

  function confirm(message) {
    const dialog = $("confirm-dialog");
    $("confirm-message").textContent = message;
    return new Promise((resolve) => {
      const done = (ok) => {
        $("confirm-yes").onclick = null;
        $("confirm-no").onclick = null;
        dialog.removeEventListener("close", left);
        if (dialog.open) dialog.close();
        resolve(ok);
      };
      const left = () => done(false);
      $("confirm-yes").onclick = () => done(true);
      $("confirm-no").onclick = () => done(false);
      dialog.addEventListener("close", left);
      dialog.showModal();
      // The safe choice has the focus: Enter does not delete.
      $("confirm-no").focus();
    });
  }

  async function confirmDelete(doc, button) {
    showError("");
    showNotice("");
    if (!(await confirm(t.confirmDelete(doc.title, doc.passages)))) {
      button.focus();
      return;
    }
    try {
      await requestJson(`api/documents/${doc.id.split("/").map(encodeURIComponent).join("/")}`, { method: "DELETE" }, { admin: true });
      showNotice(t.documentDeleted(doc.title));
    } catch (problem) {
      showError(problem instanceof ApiError ? failure(problem) : t.unreachable);
    }
    await refresh();
    $("documents-title").focus();
  }

  function failure(problem) {
    const kind = t.uploadErrors[problem.type];
    return kind ? t.uploadFailed(kind, problem.detail) : problem.message;
  }

  async function send(files) {
    if (!files.length || busy) return;
    busy = true;
    showError("");
    showNotice("");
    results.replaceChildren();
    progress.hidden = false;
    progress.value = 0;
    uploadStatus.textContent = t.uploading(files.length, 0);
    try {
      const { documents } = await upload(files, (fraction) => {
        progress.value = fraction;
        uploadStatus.textContent =
          fraction < 1 ? t.uploading(files.length, Math.round(fraction * 100)) : t.indexing(files.length);
      });
      uploadStatus.textContent = "";
      results.replaceChildren(
        ...documents.map((d) => el("li", { text: t.uploaded(d.id, t.uploadStatus[d.status] || d.status, d.passages) })),
      );
      await refresh();
    } catch (problem) {
      uploadStatus.textContent = "";
      showError(problem instanceof ApiError ? failure(problem) : t.unreachable);
    } finally {
      progress.hidden = true;
      busy = false;
      input.value = "";
    }
  }

  input.addEventListener("change", () => send([...input.files]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove("over");
  });
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    send([...(event.dataTransfer?.files || [])]);
  });
  // A file dropped beside the zone must not make the browser leave the page to show it.
  drawer.addEventListener("dragover", (event) => event.preventDefault());
  drawer.addEventListener("drop", (event) => event.preventDefault());
  $("admin-key").addEventListener("click", async () => {
    if (await askForKey("admin")) {
      await checkAdmin();
      await refresh();
      if (!admin) showError(t.keyRejected);
    }
  });
  drawer.querySelector(".drawer-close").addEventListener("click", () => drawer.close());
  closeOnBackdrop(drawer);
  drawer.addEventListener("close", () => {
    if (opener && document.body.contains(opener) && !document.getElementById("panel").contains(document.activeElement)) {
      opener.focus();
    }
  });
  return { open, refresh };
}
