// Talking to /api/v1: the key the user gave (kept in sessionStorage) as a Bearer header, problems as errors.

const KEY = "tocsin.apiKey";
const listeners = new Set();

/** An answer that was not 2xx, with the RFC 9457 problem the API sent. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** Be told when the API asks for a key (401). */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

/** A parameter sent with an empty value (`by=` merges every series); other empty values are left out. */
export const EMPTY = Symbol("empty");

/** Call `/api/v1{path}`; `params` values may be arrays (repeated parameters); `body` is sent as JSON. */
export async function api(path, { method = "GET", params, body } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    for (const item of [value].flat()) {
      if (item === EMPTY) url.searchParams.append(name, "");
      else if (item !== null && item !== undefined && item !== "") url.searchParams.append(name, item);
    }
  }
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) listeners.forEach((fn) => fn());
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      problem = { title: response.statusText };
    }
    throw new ApiError(response.status, problem);
  }
  return response.json();
}
