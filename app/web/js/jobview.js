// One job's list item: its elements, and how a job's model is shown in them.

import { withKey } from "./api.js";
import { formatBytes, formatCount, formatDuration, h, plural, setText } from "./dom.js";

export const ACTIVE = new Set(["queued", "running", "zipping"]);

/** The list item of a job, with Cancel and Remove wired to the given callbacks. */
export function createJobView({ onCancel, onRemove }) {
  const title = h("span", { class: "job-title" });
  const state = h("span", { class: "job-state" });
  const progress = h("progress", { "aria-label": "Progress", max: "1", value: "0" });
  const aid = h("span", { class: "aid job-aid", hidden: true });
  const meta = h("span", { class: "job-meta" });
  const message = h("p", { class: "job-message", hidden: true });
  const cancel = h("button", { type: "button", class: "small", onclick: onCancel }, "Cancel");
  const save = h("a", { class: "button small primary", download: "", hidden: true }, "Save");
  const remove = h("button", { type: "button", class: "small quiet", onclick: onRemove }, "Remove");
  const item = h("li", { class: "job" },
    h("div", { class: "job-head" }, title, state),
    progress,
    h("div", { class: "job-foot" }, h("span", { class: "job-facts" }, aid, meta), h("span", { class: "job-actions" }, cancel, save, remove)),
    message);
  return { item, title, state, progress, aid, meta, message, cancel, save, remove };
}

/** Show the job's current model in its view (only what changed is touched). */
export function renderJob(job, view, now) {
  const active = ACTIVE.has(job.state);
  view.item.dataset.state = job.state;
  setText(view.title, job.label || job.title || job.id);
  setText(view.state, job.state === "loading" ? "…" : job.state);

  const { progress } = view;
  if (job.total > 0) {
    progress.max = job.total;
    progress.value = Math.min(job.done, job.total);
  } else if (job.state === "running" || job.state === "zipping") {
    progress.removeAttribute("value"); // indeterminate until the total is known
  } else {
    progress.max = 1;
    progress.value = job.state === "ready" ? 1 : 0;
  }

  setText(view.aid, job.albumId ? `JM${job.albumId}` : "");
  view.aid.hidden = !job.albumId;

  const parts = [];
  if (job.total > 0) parts.push(`${formatCount(job.done)} / ${plural(job.total, "file")}`);
  if (job.bytes > 0) parts.push(formatBytes(job.bytes));
  if (job.state === "ready" && job.expiresAt) {
    const left = job.expiresAt - now;
    parts.push(left > 0 ? `expires in ${formatDuration(left)}` : "expiring now");
  }
  setText(view.meta, parts.join(" · "));

  const problem = job.state === "failed" || job.state === "cancelled" || job.state === "expired"
    || job.state === "unknown";
  const filed = job.state === "ready" && job.libraryPaths?.length
    ? `Filed in the library: ${job.libraryPaths.join(", ")}` : "";
  const text = problem ? (job.message || job.error) : (filed || (job.error && job.state !== "ready" ? job.error : ""));
  setText(view.message, text);
  view.message.hidden = !text;

  view.cancel.hidden = !active;
  view.remove.hidden = active;
  const ready = job.state === "ready" && job.downloadUrl;
  view.save.hidden = !ready;
  if (ready) {
    const href = withKey(job.downloadUrl);
    if (view.save.getAttribute("href") !== href) view.save.setAttribute("href", href);
  } else if (view.save.hasAttribute("href")) {
    view.save.removeAttribute("href");
  }
}
