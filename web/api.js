// Talking to the server: requests with the API key, the key dialog, uploads with progress.

import { t } from "./i18n.js";

const KEY_STORAGE = "assistant.apiKey";
// Open tabs of the page lend their key to a tab opened since, so that the key is asked once
// per browser session; it is never written anywhere that outlives the session.
const channel = "BroadcastChannel" in window ? new BroadcastChannel("assistant.key") : null;
const waiting = new Set();

/** Fired (event "key") when a newly given key has been accepted by the server. */
export const keyEvents = new EventTarget();

export class ApiError extends Error {
  /** `message` is for people; `type` and `detail` are the server's error type and message. */
  constructor(message, status, type = "", detail = "") {
    super(message);
    this.status = status;
    this.type = type;
    this.detail = detail;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

channel?.addEventListener("message", ({ data }) => {
  if (data?.type === "ask" && apiKey()) channel.postMessage({ type: "key", key: apiKey() });
  else if (data?.type === "key" && typeof data.key === "string" && data.key && !apiKey()) {
    sessionStorage.setItem(KEY_STORAGE, data.key);
    for (const resolve of waiting) resolve(true);
  }
});

function keyFromOtherTabs(timeout = 300) {
  if (!channel) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok) => {
      waiting.delete(done);
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    waiting.add(done);
    channel.postMessage({ type: "ask" });
  });
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

let asking = null;

/** Ask for a key in the key dialog; true once one is given, false when the dialog is left. */
export function askForKey(reason) {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const cancel = document.getElementById("key-cancel");
  document.getElementById("key-message").textContent =
    { needed: t.keyNeeded, rejected: t.keyRejected, admin: t.keyAdmin }[reason] || t.keyNeeded;
  asking = new Promise((resolve) => {
    const finish = (ok) => {
      form.onsubmit = null;
      cancel.onclick = null;
      dialog.removeEventListener("close", left);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(ok);
    };
    // Escape closes the dialog without a submit: that is a "no" too.
    const left = () => finish(false);
    form.onsubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      finish(true);
    };
    cancel.onclick = () => finish(false);
    dialog.addEventListener("close", left);
    input.value = "";
    dialog.showModal();
    input.focus();
  });
  return asking;
}

async function errorOf(response) {
  try {
    const { error } = await response.json();
    return { type: String(error.type || ""), message: String(error.message || response.statusText) };
  } catch {
    return { type: "", message: response.statusText || String(response.status) };
  }
}

/**
 * A request to the API with the session's key. A 401 (or, with `admin`, a 403) asks for a
 * key (a rejected key is forgotten and the dialog says so) and sends again with it; other
 * errors become an ApiError whose message can be shown as it is.
 */
export async function request(path, init = {}, { admin = false, send = fetch } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const sent = apiKey();
    let response;
    try {
      response = await send(path, { ...init, headers: withKey(init.headers) });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(t.unreachable, 0, "unreachable");
    }
    if (response.ok) {
      if (attempt > 0) keyEvents.dispatchEvent(new Event("key"));
      return response;
    }
    const { type, message } = await errorOf(response);
    // Another request has meanwhile been given a new key: this one tries it too.
    if (response.status === 401 && sent && apiKey() && apiKey() !== sent) continue;
    const forbidden = admin && response.status === 403 && type === "forbidden";
    if (response.status === 401 || forbidden) {
      if (response.status === 401 && sent && apiKey() === sent) sessionStorage.removeItem(KEY_STORAGE);
      const reason = forbidden ? "admin" : sent ? "rejected" : "needed";
      if (reason === "needed" && attempt === 0 && (await keyFromOtherTabs())) continue;
      if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
      if (await askForKey(reason)) continue;
      const shown = { needed: t.unauthorized, rejected: t.rejected, admin: t.keyAdmin }[reason];
      throw new ApiError(shown, response.status, type, message);
    }
    if (response.status === 429) {
      throw new ApiError(t.rateLimited(response.headers.get("Retry-After") || "?"), 429, type, message);
    }
    if (response.status === 422 && type !== "invalid_upload") throw new ApiError(t.invalid(message), 422, type, message);
    if (response.status >= 500 && response.status !== 507) {
      throw new ApiError(t.serverError(response.status, message), response.status, type, message);
    }
    throw new ApiError(message, response.status, type, message);
  }
}

/** JSON in, JSON out. */
export async function requestJson(path, { method = "GET", body, signal } = {}, options = {}) {
  const init = { method, signal, headers: body === undefined ? {} : { "Content-Type": "application/json" } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await request(path, init, options);
  return response.status === 204 ? null : response.json();
}

/**
 * Send files as the API's multipart upload, reporting progress (`onProgress(fraction)`);
 * fetch cannot tell how much of a body was sent, XMLHttpRequest can.
 */
export function upload(files, onProgress) {
  const send = (path, init) =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(init.method, path);
      for (const [name, value] of Object.entries(init.headers || {})) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        const headers = { "Content-Type": xhr.getResponseHeader("Content-Type") || "application/json" };
        const retry = xhr.getResponseHeader("Retry-After");
        if (retry) headers["Retry-After"] = retry;
        const body = xhr.status === 204 ? null : xhr.responseText;
        resolve(new Response(body, { status: xhr.status, headers }));
      });
      xhr.addEventListener("error", () => reject(new TypeError("network error")));
      xhr.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      xhr.send(init.body);
    });
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return request("api/documents", { method: "POST", body: form }, { admin: true, send }).then((r) => r.json());
}

/**
 * Whether this session may add and delete documents: asks to delete a document that cannot
 * exist (no id is empty), which is refused (401, 403) before anything is looked up for a
 * caller who may not, and answered 404 for one who may.
 */
export async function mayChangeDocuments() {
  const sent = apiKey();
  let response;
  try {
    response = await fetch("api/documents/", { method: "DELETE", headers: withKey() });
  } catch {
    return false;
  }
  if (response.status === 401 && sent && apiKey() === sent) sessionStorage.removeItem(KEY_STORAGE);
  return response.status === 404;
}
