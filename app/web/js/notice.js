// One alert line under the header for things the user must act on (a 401, a failed request).

import { fill, h } from "./dom.js";

const box = document.getElementById("notice");
const text = document.getElementById("notice-text");

document.getElementById("notice-close").addEventListener("click", hideNotice);

/** Show `message`; `action` = {label, run} adds a button after it. */
export function showNotice(message, action = null) {
  fill(text, message, action ? " " : null,
    action ? h("button", { type: "button", class: "link", onclick: () => action.run() }, action.label) : null);
  box.hidden = false;
}

export function hideNotice() {
  box.hidden = true;
}
