// Booru: pick a site, preview the posts for some tags, download a captioned dataset.

import { api, clientId } from "./api.js";
import { $, fill, formatCount, h } from "./dom.js";
import { showNotice } from "./notice.js";
import { trainerKeys } from "./trainer.js";

const PAGE_SIZE = 40;
const FALLBACK_SITES = [{ site: "gelbooru", name: "Gelbooru", credentials: "required", configured: true }];

/** Words from "a, b c" (the caption and filter fields accept both separators). */
const words = (text) => text.split(/[\s,]+/).filter(Boolean);
const numberOrNull = (text) => (text.trim() === "" ? null : Number(text));

function previewUrl(site, post) {
  return `/v1/booru/${encodeURIComponent(site)}/preview?url=${encodeURIComponent(post.preview_url)}`;
}

function postItem(site, post) {
  const tags = Array.isArray(post.tags) ? post.tags.map(String) : [];
  const size = post.width && post.height ? `${post.width}×${post.height}` : "";
  const facts = [post.rating, `★ ${post.score ?? 0}`, size].filter(Boolean).join(" · ");
  const image = post.preview_url
    ? h("img", { src: previewUrl(site, post), alt: `Post ${post.id}`, loading: "lazy", decoding: "async",
      title: tags.join(" "), onerror: (event) => event.target.classList.add("missing") })
    : h("span", { class: "no-preview" }, "no preview");
  return h("li", { class: "post" }, image, h("span", { class: "post-meta" }, facts));
}

export function setupBooru({ jobs }) {
  const form = $("booru-form");
  const siteSelect = $("booru-site");
  const tagsInput = $("booru-tags");
  const imagesInput = $("booru-images");
  const status = $("booru-status");
  const posts = $("booru-posts");
  const more = $("booru-more");
  let sitesLoaded = null;
  let browsing = null; // {site, tags, page, controller}

  async function loadSites() {
    let sites = FALLBACK_SITES;
    try {
      const answer = await api("/v1/booru/sites");
      if (Array.isArray(answer) && answer.length) sites = answer;
    } catch {
      // A server without /v1/booru/sites knows Gelbooru only.
    }
    const saved = localStorage.getItem("jmbooru.site");
    fill(siteSelect, sites.map((s) => {
      const unusable = s.credentials === "required" && s.configured === false;
      return h("option", { value: String(s.site), disabled: unusable },
        `${s.name || s.site}${unusable ? " (needs credentials on the server)" : ""}`);
    }));
    const usable = [...siteSelect.options].filter((o) => !o.disabled);
    const pick = usable.find((o) => o.value === saved) ?? usable[0];
    if (pick) siteSelect.value = pick.value;
  }

  function caption() {
    const f = form.elements;
    const order = words(f.category_order.value);
    return {
      remove_underscore: f.remove_underscore.checked,
      escape_parentheses: f.escape_parentheses.checked,
      separator: f.separator.value,
      category_order: order.length ? order : null,
      drop_categories: words(f.drop_categories.value),
    };
  }

  function filters() {
    const f = form.elements;
    const ratings = [...form.querySelectorAll('input[name="rating"]')];
    const allowed = ratings.filter((r) => r.checked).map((r) => r.value);
    return {
      rating: allowed.length === ratings.length ? null : allowed,
      min_width: numberOrNull(f.min_width.value),
      min_height: numberOrNull(f.min_height.value),
      min_score: numberOrNull(f.min_score.value),
      blacklist: words(f.blacklist.value),
    };
  }

  async function preview(site, tags, page) {
    browsing?.controller.abort();
    const controller = new AbortController();
    browsing = { site, tags, page, controller };
    if (page === 1) posts.replaceChildren();
    more.hidden = true;
    status.textContent = "Loading posts…";
    const query = new URLSearchParams({ tags, page: String(page), limit: String(PAGE_SIZE) });
    try {
      const answer = await api(`/v1/booru/${encodeURIComponent(site)}/posts?${query}`, { signal: controller.signal });
      const list = Array.isArray(answer?.posts) ? answer.posts : [];
      posts.append(...list.map((post) => postItem(site, post)));
      const shown = posts.childElementCount;
      const count = Number.isFinite(answer?.count) ? answer.count : null;
      status.textContent = shown === 0 ? `No posts match “${tags}”.`
        : count === null ? `${formatCount(shown)} posts shown`
          : `${formatCount(shown)} of ${formatCount(count)} posts shown`;
      more.hidden = list.length < PAGE_SIZE || (count !== null && shown >= count);
    } catch (error) {
      if (error.name !== "AbortError") status.textContent = error.message;
    }
  }

  async function downloadDataset() {
    const site = siteSelect.value;
    const tags = tagsInput.value.trim();
    const body = {
      tags, max_images: Number(imagesInput.value), client_id: clientId, caption: caption(), filters: filters(),
      ...trainerKeys(form),
    };
    if (body.filters.rating && body.filters.rating.length === 0) {
      showNotice("Choose at least one rating in the filter options.");
      return;
    }
    try {
      const answer = await api(`/v1/download/booru/${encodeURIComponent(site)}`, { method: "POST", body });
      jobs.add(answer, `${site}: ${tags} (${body.max_images} images)`);
      status.textContent = `The ${site} dataset for “${tags}” was added to Jobs.`;
    } catch (error) {
      showNotice(`Could not start the dataset: ${error.message}`);
    }
  }

  siteSelect.addEventListener("change", () => localStorage.setItem("jmbooru.site", siteSelect.value));
  $("booru-preview").addEventListener("click", () => {
    if (tagsInput.reportValidity()) preview(siteSelect.value, tagsInput.value.trim(), 1);
  });
  more.addEventListener("click", () => {
    if (browsing) preview(browsing.site, browsing.tags, browsing.page + 1);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    downloadDataset();
  });

  return {
    /** Read the site list the first time the Booru tab is shown. */
    activate() {
      sitesLoaded ??= loadSites();
      return sitesLoaded;
    },
  };
}
