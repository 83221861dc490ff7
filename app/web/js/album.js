// The album view: cover, tags, authors, counts, chapters, comments, and Download with a format
// and a layout.

import { api } from "./api.js";
import { albumChoices } from "./choices.js";
import { $, fill, formatCount, h, plural } from "./dom.js";
import { coverUrl, downloadAlbum } from "./jm.js";
import { showNotice } from "./notice.js";

function commentItem(comment) {
  const who = String(comment.nickname || comment.username || "someone");
  const facts = [comment.created_at, Number(comment.likes) > 0 ? `♥ ${formatCount(comment.likes)}` : ""]
    .filter(Boolean).join(" · ");
  const text = h("p", { class: "comment-text" }, String(comment.content ?? ""));
  const body = comment.is_spoiler ? h("details", {}, h("summary", {}, "Spoiler"), text) : text;
  const replies = Array.isArray(comment.replies) && comment.replies.length
    ? h("ul", { class: "comments replies" }, comment.replies.map(commentItem)) : null;
  return h("li", { class: "comment" },
    h("p", { class: "comment-head" }, h("strong", {}, who), facts ? ` · ${facts}` : ""), body, replies);
}

export function setupAlbum({ jobs, searchFor }) {
  const dialog = $("album");
  const format = $("album-format");
  const layout = $("album-layout");
  const download = $("album-download");
  const hint = $("album-choices-hint");
  const comments = $("album-comments");
  const commentsStatus = $("comments-status");
  const moreComments = $("comments-more");
  let current = null; // {aid, title, commentsPage, controller}

  function fact(name, value) {
    return value === null || value === undefined || value === "" ? [] : [h("dt", {}, name), h("dd", {}, value)];
  }

  function tagButtons(values) {
    const list = Array.isArray(values) ? values : [];
    if (!list.length) return null;
    return h("span", { class: "chips" }, list.map((value) => h("button", {
      type: "button", class: "chip", onclick: () => { dialog.close(); searchFor(String(value)); },
    }, String(value))));
  }

  function showInfo(info) {
    const title = String(info.title ?? current.title);
    current.title = title;
    $("album-title").textContent = title;
    fill($("album-meta"),
      fact("Authors", tagButtons(info.authors)),
      fact("Tags", tagButtons(info.tag)),
      fact("Works", (info.works ?? []).join(", ")),
      fact("Characters", (info.actors ?? []).join(", ")),
      fact("Pages", formatCount(info.page_count)),
      fact("Views", formatCount(info.view_count)),
      fact("Likes", formatCount(info.like_count)),
      fact("Published", info.pub_date),
      fact("Description", info.description));
    const chapters = Array.isArray(info.chapters) ? info.chapters : [];
    const name = (c) => String(c.title || `Chapter ${c.sort ?? ""}`);
    // A checkbox per chapter when there is a choice to make: the download takes the checked ones.
    const pickable = chapters.length > 1 && chapters.every((c) => c.id !== undefined && c.id !== null);
    fill($("album-chapters"), chapters.map((c) => h("li", {}, pickable
      ? h("label", { class: "check" }, h("input", { type: "checkbox", value: String(c.id), checked: true }), name(c))
      : name(c))));
    current.chapterCount = pickable ? chapters.length : 0;
    $("album-chapters-all").hidden = !pickable;
  }

  /** The checked chapter ids, or null for the whole album. */
  function chosenChapters() {
    if (!current.chapterCount) return null;
    const boxes = [...$("album-chapters").querySelectorAll('input[type="checkbox"]')];
    const checked = boxes.filter((box) => box.checked).map((box) => box.value);
    return checked.length === boxes.length ? null : checked;
  }

  async function loadComments(page) {
    const { aid, controller } = current;
    moreComments.hidden = true;
    commentsStatus.textContent = "Loading comments…";
    try {
      const answer = await api(`/v1/comments/${encodeURIComponent(aid)}?page=${page}`, { signal: controller.signal });
      const list = Array.isArray(answer?.comments) ? answer.comments : [];
      comments.append(...list.map(commentItem));
      current.commentsPage = page;
      const total = Number(answer?.total ?? answer?.comment_count);
      commentsStatus.textContent = comments.childElementCount
        ? (Number.isFinite(total) ? plural(total, "comment") : "") : "No comments.";
      moreComments.hidden = !(Number(answer?.page_count) > page) || !list.length;
    } catch (error) {
      if (error.name === "AbortError") return;
      // 404: an album without comments, or a server without the comments endpoint.
      commentsStatus.textContent = error.status === 404 ? "No comments." : `Comments: ${error.message}`;
    }
  }

  async function updateChoices() {
    const caps = await albumChoices.capabilities();
    // A format the server lists that the page does not know yet becomes an option (one registry).
    for (const entry of caps.format.listed ?? []) {
      if (![...format.options].some((o) => o.value === entry.name)) {
        format.append(h("option", { value: entry.name, title: entry.description }, entry.name));
      }
    }
    for (const option of format.options) option.disabled = !caps.format.values.has(option.value);
    for (const option of layout.options) option.disabled = !caps.layout.values.has(option.value);
    layout.disabled = format.value !== "zip";
    const notes = [];
    if (caps.format.values.size < 2) notes.push("This server makes zip archives only.");
    if (format.value !== "zip") notes.push("The layout applies to zip archives.");
    hint.textContent = notes.join(" ");
  }

  async function open(aid, title) {
    current?.controller.abort();
    current = { aid, title, commentsPage: 0, chapterCount: 0, controller: new AbortController() };
    $("album-title").textContent = title || `JM${aid}`;
    $("album-id").textContent = `JM${aid}`;
    $("album-cover").src = coverUrl(aid);
    fill($("album-meta"), h("dd", {}, "Loading…"));
    fill($("album-chapters"));
    $("album-chapters-all").hidden = true;
    comments.replaceChildren();
    if (!dialog.open) dialog.showModal();
    loadComments(1);
    // Read the saved choice once the server's capabilities are known, not before: a choice the
    // user made while they loaded is saved by then and must not be undone.
    const opened = current;
    albumChoices.capabilities().then(() => albumChoices.effective(albumChoices.saved())).then((effective) => {
      if (current !== opened) return;
      format.value = effective.format;
      layout.value = effective.layout;
      return updateChoices();
    });
    try {
      const info = await api(`/v1/info/${encodeURIComponent(aid)}`, { signal: current.controller.signal });
      if (current.aid === aid) showInfo(info);
    } catch (error) {
      if (error.name !== "AbortError") fill($("album-meta"), h("dd", { class: "error" }, error.message));
    }
  }

  format.addEventListener("change", () => {
    albumChoices.save({ format: format.value, layout: layout.value });
    updateChoices();
  });
  layout.addEventListener("change", () => albumChoices.save({ format: format.value, layout: layout.value }));
  download.addEventListener("click", async () => {
    const chapters = chosenChapters();
    if (chapters && !chapters.length) {
      showNotice("Choose at least one chapter to download.");
      return;
    }
    download.disabled = true;
    const choices = { format: format.value, layout: layout.value };
    albumChoices.save(choices);
    const picked = chapters ? { ids: chapters, of: current.chapterCount } : null;
    try {
      if (await downloadAlbum(jobs, current.aid, current.title, choices, picked)) dialog.close();
    } finally {
      download.disabled = false;
    }
  });
  $("album-chapters-all").addEventListener("click", () => {
    const boxes = [...$("album-chapters").querySelectorAll('input[type="checkbox"]')];
    const check = !boxes.every((box) => box.checked);
    for (const box of boxes) box.checked = check;
  });
  moreComments.addEventListener("click", () => loadComments(current.commentsPage + 1));
  $("album-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => current?.controller.abort());
  // A click on the backdrop (outside the dialog's box) closes it.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) {
      const box = dialog.getBoundingClientRect();
      const inside = event.clientX >= box.left && event.clientX <= box.right
        && event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    }
  });

  return { open };
}
