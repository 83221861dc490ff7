// Talking to the server: the API key and client id (localStorage), JSON requests, and the
// events the rest of the page listens to ("unauthorized", "apikey").

const KEY_STORAGE = "jmbooru.apiKey";
const CLIENT_STORAGE = "jmbooru.clientId";

export const events = new EventTarget();

function storageGet(name) {
  try {
    return localStorage.getItem(name);
  } catch {
    return null; // storage disabled: the page still works, it just forgets
  }
}

function storageSet(name, value) {
  try {
    if (value) localStorage.setItem(name, value);
    else localStorage.removeItem(name);
  } catch {
    /* storage disabled */
  }
}

export function readJson(name, fallback) {
  try {
    const value = JSON.parse(storageGet(name) ?? "null");
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

export function writeJson(name, value) {
  storageSet(name, JSON.stringify(value));
}

// A client id is a bearer name: whoever knows it can take this browser's pending finals. So it is
// a random UUID (122 random bits), never something guessable; older pages stored "web-<hex>" ids,
// which are replaced once.
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function newClientId() {
  if (typeof crypto.randomUUID === "function") {
    try {
      return crypto.randomUUID();
    } catch {
      // fall through to the fallback below
    }
  }
  // crypto.randomUUID needs a secure context; a LAN address over plain http is not one, but
  // getRandomValues works everywhere: build the same version-4 UUID from it.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const clientId = (() => {
  let id = storageGet(CLIENT_STORAGE);
  if (!id || !UUID_RE.test(id)) {
    id = newClientId();
    storageSet(CLIENT_STORAGE, id);
  }
  return id;
})();

export function apiKey() {
  return storageGet(KEY_STORAGE) ?? "";
}

export function setApiKey(value) {
  storageSet(KEY_STORAGE, value.trim());
  events.dispatchEvent(new Event("apikey"));
}

/** A URL with ?api_key= added when a key is set (WebSockets and links cannot send headers). */
export function withKey(url) {
  const key = apiKey();
  if (!key) return url;
  return `${url}${url.includes("?") ? "&" : "?"}api_key=${encodeURIComponent(key)}`;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** The sentence to show for a 401, depending on whether a key was sent. */
export function unauthorizedMessage() {
  return apiKey()
    ? "The server refused the API key: check it in Settings."
    : "This server needs an API key: open Settings and enter it.";
}

/**
 * A JSON request. Resolves to the parsed body; rejects with an ApiError carrying the server's
 * sentence ({"detail": ...}) or one of ours when the server cannot be reached.
 */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The server cannot be reached: is it running?");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401) {
      events.dispatchEvent(new Event("unauthorized"));
      throw new ApiError(401, unauthorizedMessage());
    }
    const detail = (data && (data.detail || data.msg)) || `The server answered ${response.status}.`;
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

/** Run `worker` over `items` with at most `limit` at once (re-reading many jobs after a reload). */
export async function eachLimited(items, limit, worker) {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const item = items[next++];
      await worker(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}
