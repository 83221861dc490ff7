// Subscriptions: the list (last and next check, last error, new count), check now, pause, remove,
// and "Follow" on an album and on a booru search.

import { api, clientId } from "./api.js";
import { $, fill, h } from "./dom.js";
import { showNotice } from "./notice.js";

const KIND_NAMES = { jm_album: "Album", jm_favorites: "JM favourites", booru_query: "Booru search" };

function when(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

export function setupSubscriptions({ jobs }) {
  const list = $("subs");
  const empty = $("subs-empty");
  const status = $("subs-status");

  function item(sub) {
    const facts = [
      KIND_NAMES[sub.kind] ?? sub.kind,
      `every ${sub.interval_minutes >= 60 ? `${+(sub.interval_minutes / 60).toFixed(2)} h` : `${+sub.interval_minutes.toFixed(2)} min`}`,
      `last check ${when(sub.last_checked_at)}`,
      sub.enabled ? `next ${when(sub.next_check_at)}` : "paused",
      `${plural(sub.last_new, "new item", "new items")} last time`,
    ];
    const act = (label, run) => h("button", { type: "button", class: "small", onclick: run,
      "aria-label": `${label} ${sub.name}` }, label);
    return h("li", { class: "sub", dataset: { id: sub.id } },
      h("strong", { class: "sub-name" }, sub.name),
      h("span", { class: "sub-facts" }, facts.join(" · ")),
      sub.last_error ? h("span", { class: "sub-error", role: "note" }, `Last check failed: ${sub.last_error}`) : null,
      h("span", { class: "row" },
        act("Check now", () => checkNow(sub)),
        act(sub.enabled ? "Pause" : "Resume", () => change(sub, { enabled: !sub.enabled })),
        act("Remove", () => remove(sub))));
  }

  async function load() {
    try {
      const subs = await api("/v1/subscriptions");
      fill(list, subs.map(item));
      empty.hidden = subs.length > 0;
    } catch (error) {
      fill(status, error.message);
    }
  }

  async function checkNow(sub) {
    fill(status, `Checking ${sub.name}…`);
    try {
      const answer = await api(`/v1/subscriptions/${encodeURIComponent(sub.id)}/check`, { method: "POST" });
      for (const job of answer.jobs) jobs.add({ job_id: job.job_id, state: "queued" }, sub.name);
      fill(status, answer.new.length
        ? `${sub.name}: ${plural(answer.new.length, "new item", "new items")}, ${plural(answer.jobs.length, "download", "downloads")} started.`
        : `${sub.name}: nothing new.`);
    } catch (error) {
      fill(status, error.message);
    }
    await load();
  }

  async function change(sub, patch) {
    try {
      await api(`/v1/subscriptions/${encodeURIComponent(sub.id)}`, { method: "PATCH", body: patch });
    } catch (error) {
      showNotice(error.message);
    }
    await load();
  }

  async function remove(sub) {
    try {
      await api(`/v1/subscriptions/${encodeURIComponent(sub.id)}`, { method: "DELETE" });
      fill(status, `Stopped following ${sub.name}.`);
    } catch (error) {
      showNotice(error.message);
    }
    await load();
  }

  async function follow(body, what) {
    try {
      const sub = await api("/v1/subscriptions", { method: "POST", body: { client_id: clientId, ...body } });
      showNotice(`Following ${sub.name}: new ${what} will download by themselves (Subscriptions tab).`);
    } catch (error) {
      showNotice(error.message);
    }
    await load();
  }

  // "Follow" in the album view: the album shown there (its id is on the page as JM<id>).
  $("album-follow")?.addEventListener("click", () => {
    const aid = ($("album-id").textContent || "").replace(/^JM/, "");
    const format = $("album-format")?.value || "zip";
    follow({ kind: "jm_album", target: { album_id: aid }, format }, "chapters");
  });
  // "Follow search" on the Booru tab: the site and tags in the form.
  $("booru-follow")?.addEventListener("click", () => {
    const site = $("booru-site").value;
    const tags = $("booru-tags").value.trim();
    if (!tags) {
      showNotice("Type some tags to follow first.");
      return;
    }
    follow({ kind: "booru_query", target: { site, tags } }, "posts");
  });
  $("subs-favorites")?.addEventListener("click", () => follow({ kind: "jm_favorites", target: {} }, "favourites"));

  return { load };
}
