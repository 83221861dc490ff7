// JM: rankings, search, result cards with covers, and downloads. The album view is album.js.

import { api, clientId } from "./api.js";
import { formatCount, h, plural } from "./dom.js";
import { albumChoices } from "./choices.js";
import { showNotice } from "./notice.js";
import { looksLikeLink, startLink } from "./paste.js";

const PERIOD_NAMES = { day: "Day", week: "Week", month: "Month", all: "All-time" };
const MAX_SEARCH_PAGE = 100;
const JM_PAGE_SIZE = 80; // a full page of JM search or ranking results: a shorter one is the last

const albums = (n) => plural(n, "album");

export function coverUrl(aid) {
  return `/v1/get/cover/${encodeURIComponent(aid)}`;
}

/**
 * Start an album download with the saved format and layout (and, when `picked` = {ids, of} is
 * given, only those chapters); the job goes to the list.
 */
export async function downloadAlbum(jobs, aid, title, wanted = albumChoices.saved(), picked = null) {
  const choices = await albumChoices.effective(wanted);
  const body = { client_id: clientId, ...(await albumChoices.requestFields(choices)) };
  if (picked) body.chapters = picked.ids; // absent: the whole album (a subset is a different job)
  let label = albumChoices.label(title || `JM${aid}`, choices);
  if (picked) label += ` · ${formatCount(picked.ids.length)} of ${plural(picked.of, "chapter")}`;
  try {
    const answer = await api(`/v1/download/album/${encodeURIComponent(aid)}`, { method: "POST", body });
    jobs.add(answer, label, aid);
    return true;
  } catch (error) {
    showNotice(`Could not start the download of ${title || `JM${aid}`}: ${error.message}`);
    return false;
  }
}

export function setupJm({ jobs, openAlbum }) {
  const form = document.getElementById("jm-search");
  const input = form.elements.q;
  const results = document.getElementById("jm-results");
  const status = document.getElementById("jm-status");
  const more = document.getElementById("jm-more");
  const periodButtons = [...document.querySelectorAll(".periods button")];
  let listing = null; // {path(page), describe(count), page, controller}

  function card(item) {
    const aid = String(item.aid ?? item.album_id ?? "");
    const title = String(item.title ?? "");
    return h("li", { class: "card" },
      h("button", { type: "button", class: "card-open", onclick: () => openAlbum(aid, title) },
        h("img", { src: coverUrl(aid), alt: "", loading: "lazy", decoding: "async", width: "150", height: "200",
          onerror: (event) => event.target.classList.add("missing") }),
        h("span", { class: "card-title" }, title)),
      h("div", { class: "card-foot" },
        h("span", { class: "aid" }, `JM${aid}`),
        h("button", { type: "button", class: "small", "aria-label": `Download ${title}`,
          onclick: () => downloadAlbum(jobs, aid, title) }, "Download")));
  }

  async function load(next, append) {
    listing?.controller?.abort();
    const controller = new AbortController();
    listing = { ...next, controller };
    results.setAttribute("aria-busy", "true");
    status.textContent = "Loading…";
    more.hidden = true;
    try {
      const items = await api(next.path(next.page), { signal: controller.signal });
      if (listing.controller !== controller) return;
      if (!append) results.replaceChildren();
      const list = Array.isArray(items) ? items : [];
      results.append(...list.map(card));
      if (!performance.getEntriesByName("jmbooru:first-results").length) performance.mark("jmbooru:first-results");
      status.textContent = next.describe(results.childElementCount);
      more.hidden = list.length < JM_PAGE_SIZE || !next.more(next.page);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (!append) results.replaceChildren();
      status.textContent = error.message;
    } finally {
      if (listing.controller === controller) results.removeAttribute("aria-busy");
    }
  }

  function showRanking(period) {
    for (const button of periodButtons) button.setAttribute("aria-pressed", String(button.dataset.period === period));
    localStorage.setItem("jmbooru.period", period);
    load({
      page: 1,
      path: (page) => `/v1/rank/${period}${page > 1 ? `?page=${page}` : ""}`,
      describe: (n) => `${PERIOD_NAMES[period]} ranking: ${albums(n)}`,
      more: () => true,
    }, false);
  }

  function search(query) {
    for (const button of periodButtons) button.setAttribute("aria-pressed", "false");
    load({
      page: 1,
      path: (page) => `/v1/search/${encodeURIComponent(query)}/${page}`,
      describe: (n) => (n ? `${albums(n)} for “${query}”` : `No albums found for “${query}”.`),
      more: (page) => page < MAX_SEARCH_PAGE,
    }, false);
  }

  for (const button of periodButtons) {
    button.addEventListener("click", () => {
      input.value = "";
      showRanking(button.dataset.period);
    });
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = input.value.trim();
    if (query && looksLikeLink(query)) {
      status.textContent = "Starting the download of the pasted link…";
      startLink(jobs, query).then((done) => { status.textContent = done; }, (error) => {
        status.textContent = error.message;
        showNotice(`Could not start the pasted link: ${error.message}`);
      });
    } else if (query) {
      search(query);
    }
  });
  more.addEventListener("click", () => {
    if (listing) load({ ...listing, page: listing.page + 1 }, true);
  });

  const saved = localStorage.getItem("jmbooru.period");
  showRanking(PERIOD_NAMES[saved] ? saved : "day");

  return {
    search(query) {
      input.value = query;
      search(query);
    },
  };
}
