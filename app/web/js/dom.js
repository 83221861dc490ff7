// Small DOM helpers. Text always goes in as text nodes (never parsed as HTML): JM titles contain
// "<", '"' and "|", and booru tags anything at all.

/**
 * Create an element: h("a", {href: "/x", class: "link"}, "text", childNode).
 * Props starting with "on" add listeners; true sets a boolean attribute; null/false/undefined skip.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Replace an element's children (text stays text). */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Set textContent only when it changed (cheap re-renders of long lists). */
export function setText(node, text) {
  const value = String(text ?? "");
  if (node.textContent !== value) node.textContent = value;
}

const numberFormat = new Intl.NumberFormat();

export function formatCount(value) {
  const n = Number(value);
  return Number.isFinite(n) ? numberFormat.format(n) : String(value ?? "");
}

/** "1 post", "2 posts", "1,234 posts": a count with its noun in the right number. */
export function plural(value, noun, nouns = `${noun}s`) {
  return `${formatCount(value)} ${Number(value) === 1 ? noun : nouns}`;
}

export function formatBytes(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "12 min", "1 h 5 min", "40 s": a short duration for "expires in ...". */
export function formatDuration(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}
