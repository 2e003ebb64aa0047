// Dashboard URLs: a page and its filters in the query string, so every view can be shared and reloaded.

/** The URL of a page with its filters (empty values left out). */
export function link(page, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const item of [v].flat()) if (item !== null && item !== undefined && item !== "") query.append(k, item);
  }
  const text = query.toString();
  return `/ui/${page}${text ? `?${text}` : ""}`;
}

/** Go to a dashboard URL without reloading (the shell listens for `tocsin:navigate`). */
export function navigate(url) {
  history.pushState(null, "", url);
  window.dispatchEvent(new Event("tocsin:navigate"));
}
