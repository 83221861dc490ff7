// Pools on the Booru tab: find a pool by name on the chosen site, download it as one book (CBZ),
// or file it into the reader library when the server has one.

import { api, clientId } from "./api.js";
import { $, fill, h, plural } from "./dom.js";
import { showNotice } from "./notice.js";

export function setupPools({ jobs }) {
  const form = $("pool-search");
  const status = $("pool-status");
  const results = $("pool-results");
  let library = false;

  async function start(site, pool, dest) {
    const body = { client_id: clientId, format: "cbz", dest };
    try {
      const answer = await api(`/v1/download/booru/${encodeURIComponent(site)}/pool/${pool.id}`,
        { method: "POST", body });
      jobs.add(answer, `${pool.name}${dest === "library" ? " → library" : ""}`);
      status.textContent = `${pool.name} was added to Jobs.`;
    } catch (error) {
      showNotice(`Could not start pool ${pool.id}: ${error.message}`);
    }
  }

  function item(site, pool) {
    return h("li", { class: "sub" },
      h("strong", {}, pool.name),
      h("span", { class: "sub-facts" }, `${plural(pool.post_count, "page")} · pool ${pool.id}`),
      h("span", { class: "row" },
        h("button", { type: "button", class: "small primary", "aria-label": `Download pool ${pool.name}`,
          onclick: () => start(site, pool, "archive") }, "Download CBZ"),
        library ? h("button", { type: "button", class: "small", "aria-label": `Save pool ${pool.name} to library`,
          onclick: () => start(site, pool, "library") }, "Save to library") : null));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const site = $("booru-site").value;
    const q = form.elements.q.value.trim();
    status.textContent = "Looking for pools…";
    fill(results);
    try {
      const answer = await api(`/v1/booru/${encodeURIComponent(site)}/pools?q=${encodeURIComponent(q)}`);
      fill(results, answer.pools.map((pool) => item(site, pool)));
      status.textContent = answer.pools.length ? `${plural(answer.pools.length, "pool")} on ${site}.`
        : `No pool on ${site} has those words in its name.`;
    } catch (error) {
      status.textContent = error.message;
    }
  });

  return {
    setLibrary(on) {
      library = on;
    },
  };
}
