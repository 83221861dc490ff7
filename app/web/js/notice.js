// One alert line under the header for things the user must act on (a 401, a failed request).
// While a modal dialog (the album view) is open the rest of the page is inert and hidden behind
// it, so the alert moves into the dialog and back when the dialog closes.

import { fill, h } from "./dom.js";

const box = document.getElementById("notice");
const text = document.getElementById("notice-text");
const home = { parent: box.parentNode, next: box.nextSibling };

document.getElementById("notice-close").addEventListener("click", hideNotice);

function placeBox() {
  const dialog = document.querySelector("dialog[open]");
  if (dialog && box.parentNode !== dialog) {
    dialog.prepend(box);
    dialog.addEventListener("close", () => home.parent.insertBefore(box, home.next), { once: true });
  } else if (!dialog && box.parentNode !== home.parent) {
    home.parent.insertBefore(box, home.next);
  }
}

/** Show `message`; `action` = {label, run} adds a button after it. */
export function showNotice(message, action = null) {
  fill(text, message, action ? " " : null,
    action ? h("button", { type: "button", class: "link", onclick: () => action.run() }, action.label) : null);
  placeBox();
  box.hidden = false;
}

export function hideNotice() {
  box.hidden = true;
}
