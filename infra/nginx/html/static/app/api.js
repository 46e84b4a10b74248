// The API client of the page: same origin, the HttpOnly session cookie carries the token (no
// script can read it); the CSRF token, kept in memory only, goes with every unsafe request.
// A 401 means the session is over: listeners are told, so the page asks to sign in again.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let csrfToken = null;
const expiredListeners = [];

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function onSessionExpired(listener) {
  expiredListeners.push(listener);
}

export function setCsrfToken(token) {
  csrfToken = token;
}

// The message of an error answer: FastAPI's {"detail": "..."} or [{"loc", "msg"}, ...].
export function describeError(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`)
      .join("; ");
  }
  return `the server answered ${status}`;
}

export async function request(method, path, { json, form, query } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // multipart: the browser sets the boundary
  }
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, `the server could not be reached (${error.message})`);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, describeError(payload, response.status));
    if (response.status === 401 && path !== "/api/v1/auth/session") {
      csrfToken = null;
      for (const listener of expiredListeners) listener(error);
    }
    throw error;
  }
  return payload;
}

export const api = {
  whoAmI: () => request("GET", "/api/v1/auth/session"),
  signIn: (username, password) =>
    request("POST", "/api/v1/auth/session", { json: { username, password } }),
  signOut: () => request("DELETE", "/api/v1/auth/session"),
  models: () => request("GET", "/api/v1/models"),
  upload: (form) => request("POST", "/api/v1/recordings", { form }),
  recordings: (query) => request("GET", "/api/v1/recordings", { query }),
  recording: (id) => request("GET", `/api/v1/recordings/${id}`),
  deleteRecording: (id) => request("DELETE", `/api/v1/recordings/${id}`),
  signal: (id, query) => request("GET", `/api/v1/recordings/${id}/signal`, { query }),
  reference: (id, query) => request("GET", `/api/v1/recordings/${id}/reference`, { query }),
  analyses: (id) => request("GET", `/api/v1/recordings/${id}/analyses`),
  analyse: (id, body) => request("POST", `/api/v1/recordings/${id}/analyses`, { json: body }),
  analysis: (id) => request("GET", `/api/v1/analyses/${id}`),
  beats: (id, query) => request("GET", `/api/v1/analyses/${id}/beats`, { query }),
  summary: (id, query) => request("GET", `/api/v1/analyses/${id}/summary`, { query }),
  beatsCsvUrl: (id) => `/api/v1/analyses/${id}/beats.csv`,
};
