// Building the page from data as text: every value becomes a text node, never markup.

/** Create an element; attributes are set as attributes, `on*` as listeners, children appended as text or nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "href") el.setAttribute("href", localHref(value));
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children: nodes as they are, anything else as a text node. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Links stay inside the dashboard: anything but a local path (a `javascript:` URL, say) becomes `#`. */
export function localHref(value) {
  const text = String(value);
  return text.startsWith("/") && !text.startsWith("//") ? text : "#";
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `text` as text nodes with each occurrence of a term (case-insensitive) wrapped in <mark>. */
export function highlight(text, terms) {
  const frag = document.createDocumentFragment();
  const words = [...new Set(terms.filter((t) => t && t.length))].sort((a, b) => b.length - a.length);
  if (!words.length) {
    frag.append(document.createTextNode(text));
    return frag;
  }
  const pattern = new RegExp(words.map(escapeRegExp).join("|"), "giu");
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > at) frag.append(document.createTextNode(text.slice(at, match.index)));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    frag.append(mark);
    at = match.index + match[0].length;
  }
  if (at < text.length) frag.append(document.createTextNode(text.slice(at)));
  return frag;
}

/** Words the search engine matched, from a snippet that brackets them: `[connection] [refused] by db-1`. */
export function snippetTerms(snippet) {
  return [...String(snippet || "").matchAll(/\[([^\[\]]+)\]/g)].map((m) => m[1]);
}

/** Words a log query looks for (not field filters, negations or operators), for live records without a snippet. */
export function queryTerms(query) {
  const terms = [];
  for (const match of String(query || "").matchAll(/(-?)"([^"]+)"|(-?)([^\s()"]+)/g)) {
    if (match[1] || match[3]) continue;
    const word = (match[2] || match[4] || "").replace(/\*$/, "");
    if (!word || word.includes(":") || /^(AND|OR|NOT)$/.test(word)) continue;
    terms.push(word);
  }
  return terms;
}
