// Booru: pick a site, preview the posts for some tags, download a captioned dataset.
// The Tags box also takes a pasted booru (or JM) link: "Download dataset" then starts what it shows.

import { api, clientId } from "./api.js";
import { $, fill, formatCount, h, plural } from "./dom.js";
import { showNotice } from "./notice.js";
import { looksLikeLink, startLink } from "./paste.js";
import { postKeeper } from "./postfilter.js";
import { trainerKeys } from "./trainer.js";

const PAGE_SIZE = 40;
const FALLBACK_SITES = [{ site: "gelbooru", name: "Gelbooru", credentials: "required", configured: true }];

/** Words from "a, b c" (the caption and filter fields accept both separators). */
const words = (text) => text.split(/[\s,]+/).filter(Boolean);
const numberOrNull = (text) => (text.trim() === "" ? null : Number(text));

function previewUrl(site, post) {
  return `/v1/booru/${encodeURIComponent(site)}/preview?url=${encodeURIComponent(post.preview_url)}`;
}

// Explicit and questionable thumbnails are blurred (CSS, .posts.blurred) until the user says not to.
const BLUR_STORAGE = "jmbooru.blurThumbnails";
const BLURRED_RATINGS = new Set(["explicit", "questionable"]);

/** The same tags however they are typed: "a  b " and "a b" are one search. */
const sameTags = (text) => text.trim().split(/\s+/).filter(Boolean).join(" ");

function postItem(site, post) {
  const tags = Array.isArray(post.tags) ? post.tags.map(String) : [];
  const size = post.width && post.height ? `${post.width}×${post.height}` : "";
  const facts = [post.rating, `★ ${post.score ?? 0}`, size].filter(Boolean).join(" · ");
  const image = post.preview_url
    ? h("img", { src: previewUrl(site, post), alt: `Post ${post.id}`, loading: "lazy", decoding: "async",
      title: tags.join(" "), onerror: (event) => event.target.classList.add("missing"),
      // A tap on a blurred thumbnail shows that one (and a second tap blurs it again).
      onclick: (event) => event.target.closest(".post").classList.toggle("revealed") })
    : h("span", { class: "no-preview" }, "no preview");
  // Tags in a <details>: a tap opens them on a phone, where there is no hover for the title.
  const tagList = tags.length
    ? h("details", { class: "post-tags" }, h("summary", {}, plural(tags.length, "tag")), h("p", {}, tags.join(" ")))
    : null;
  const rating = String(post.rating ?? "");
  return h("li", { class: "post", dataset: { rating, sensitive: String(BLURRED_RATINGS.has(rating)) } },
    image, h("span", { class: "post-meta" }, facts), tagList);
}

export function setupBooru({ jobs }) {
  const form = $("booru-form");
  const siteSelect = $("booru-site");
  const tagsInput = $("booru-tags");
  const imagesInput = $("booru-images");
  const status = $("booru-status");
  const posts = $("booru-posts");
  const more = $("booru-more");
  const blurToggle = $("booru-blur");
  let sitesLoaded = null;
  let browsing = null; // {site, tags, page, controller, loaded: [{post, item}], count, loading}

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

  /** Show the loaded posts a dataset job with the current filters would keep, and say how many. */
  function applyFilters() {
    if (!browsing) return;
    const keep = postKeeper(filters());
    let kept = 0;
    for (const { post, item } of browsing.loaded) {
      item.hidden = !keep(post);
      if (!item.hidden) kept += 1;
    }
    const shown = browsing.loaded.length;
    if (browsing.loading && !shown) return;
    const { count, tags } = browsing;
    if (!shown) {
      status.textContent = `No posts match “${tags}”.`;
      return;
    }
    const parts = [`${formatCount(kept)} of ${plural(shown, "post")} kept`];
    if (count !== null && count > shown) parts.push(`${formatCount(count)} match in all`);
    if (!kept) parts.push("the filters removed every post shown");
    status.textContent = parts.join(" · ");
  }

  /** Forget the grid: the tags or the site changed, so what it shows is not what a download gets. */
  function clearPosts() {
    browsing?.controller.abort();
    browsing = null;
    posts.replaceChildren();
    more.hidden = true;
    status.textContent = "";
  }

  async function preview(site, tags, page) {
    if (page === 1) clearPosts();
    else browsing?.controller.abort();
    const controller = new AbortController();
    browsing = { site, tags, page, controller, loaded: browsing?.loaded ?? [], count: browsing?.count ?? null, loading: true };
    const current = browsing;
    more.hidden = true;
    status.textContent = "Loading posts…";
    const query = new URLSearchParams({ tags, page: String(page), limit: String(PAGE_SIZE) });
    try {
      const answer = await api(`/v1/booru/${encodeURIComponent(site)}/posts?${query}`, { signal: controller.signal });
      // An older search answering after a newer one started (or after the tags changed) is dropped.
      if (browsing !== current) return;
      const list = Array.isArray(answer?.posts) ? answer.posts : [];
      const added = list.map((post) => ({ post, item: postItem(site, post) }));
      current.loaded.push(...added);
      current.count = Number.isFinite(answer?.count) ? answer.count : null;
      current.loading = false;
      posts.append(...added.map(({ item }) => item));
      applyFilters();
      const shown = current.loaded.length;
      more.hidden = list.length < PAGE_SIZE || (current.count !== null && shown >= current.count);
    } catch (error) {
      if (browsing !== current) return;
      current.loading = false;
      current.page = Math.max(1, page - 1); // "More posts" asks for the page that failed again
      if (error.name !== "AbortError") status.textContent = error.message;
      more.hidden = page === 1;
    }
  }

  async function downloadDataset() {
    await sitesReady();
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
    if (looksLikeLink(tags)) {
      // A pasted link picks its own site and tags; the form's other options still apply.
      const { tags: _linkTags, client_id: _id, ...options } = body;
      try {
        status.textContent = await startLink(jobs, tags, options);
      } catch (error) {
        showNotice(`Could not start the pasted link: ${error.message}`);
      }
      return;
    }
    try {
      const answer = await api(`/v1/download/booru/${encodeURIComponent(site)}`, { method: "POST", body });
      jobs.add(answer, `${site}: ${tags} (${plural(body.max_images, "image")})`);
      status.textContent = `The ${site} dataset for “${tags}” was added to Jobs.`;
    } catch (error) {
      showNotice(`Could not start the dataset: ${error.message}`);
    }
  }

  siteSelect.addEventListener("change", () => {
    localStorage.setItem("jmbooru.site", siteSelect.value);
    if (browsing && browsing.site !== siteSelect.value) clearPosts();
  });
  tagsInput.addEventListener("input", () => {
    if (browsing && sameTags(tagsInput.value) !== sameTags(browsing.tags)) clearPosts();
  });
  $("booru-filters").addEventListener("input", applyFilters);
  $("booru-filters").addEventListener("change", applyFilters);
  blurToggle.checked = localStorage.getItem(BLUR_STORAGE) !== "off";
  posts.classList.toggle("blurred", blurToggle.checked);
  blurToggle.addEventListener("change", () => {
    localStorage.setItem(BLUR_STORAGE, blurToggle.checked ? "on" : "off");
    posts.classList.toggle("blurred", blurToggle.checked);
  });
  // The site list loads when the tab opens; a click before it arrives waits for it (no empty site).
  const sitesReady = () => (sitesLoaded ??= loadSites());
  $("booru-preview").addEventListener("click", async () => {
    if (looksLikeLink(tagsInput.value)) {
      status.textContent = "That is a link: Download dataset starts what it shows.";
      return;
    }
    if (!tagsInput.reportValidity()) return;
    await sitesReady();
    preview(siteSelect.value, tagsInput.value.trim(), 1);
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
      return sitesReady();
    },
  };
}
