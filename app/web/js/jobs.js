// This browser's jobs: kept in localStorage with their last known state, shown at once after a
// reload and re-read from the server (the ones that can still change first), completed from the
// server's job list (GET /v1/jobs?client_id=), followed live over
// /ws/notifications/{client_id}?progress=1. "All jobs" adds every other client's jobs after them
// (read from the list, polled while some still move: they are not on this client's socket). Frames only change the model; the DOM is updated
// once per animation frame for the jobs that changed, so hundreds of jobs stay cheap.

import { api, apiKey, clientId, eachLimited, events, readJson, withKey, writeJson } from "./api.js";
import { setText } from "./dom.js";
import { ACTIVE, createJobView, renderJob } from "./jobview.js";
import { NotificationSocket } from "./socket.js";

const STORAGE = "jmbooru.jobs";
const MAX_KEPT = 300;
const READ_CONCURRENCY = 6;
const SERVER_PAGE = 100;
const OTHERS_POLL_MS = 3_000;

const FINAL = new Set(["ready", "failed", "cancelled", "expired"]);

const isActive = (job) => ACTIVE.has(job.state);
// Re-read order after a reload: what may be moving, then archives that may have gone, then the rest.
const rereadRank = (job) => (job.state === "ready" ? 1 : FINAL.has(job.state) ? 2 : 0);

function newJob(id, label = "", albumId = "") {
  return {
    id, label, albumId, title: "", kind: "", state: "loading", done: 0, total: 0, bytes: 0,
    message: "", error: "", downloadUrl: "", expiresAt: 0, seq: 0, savedState: "",
  };
}

/** Copy the fields a job answer or an event frame carries (absent fields are left alone). */
function assign(job, data) {
  if (typeof data.state === "string") job.state = data.state;
  if (typeof data.title === "string" && data.title) job.title = data.title;
  if (typeof data.kind === "string" && data.kind) job.kind = data.kind;
  // Album jobs carry their JM id: as album_id in answers and frames, in params in a job listing.
  const albumId = data.album_id ?? data.params?.album_id;
  if ((typeof albumId === "string" || typeof albumId === "number") && /^\d+$/.test(String(albumId))) {
    job.albumId = String(albumId);
  }
  for (const key of ["done", "total", "bytes"]) {
    if (Number.isFinite(data[key])) job[key] = data[key];
  }
  if (typeof data.message === "string") job.message = data.message;
  if (typeof data.error === "string") job.error = data.error;
  if (typeof data.download_url === "string") job.downloadUrl = data.download_url;
  if (Array.isArray(data.library_paths)) job.libraryPaths = data.library_paths.map(String);
  if (typeof data.expires_at === "string" && data.expires_at) {
    const when = Date.parse(data.expires_at);
    if (Number.isFinite(when)) job.expiresAt = when;
  }
  if (job.state !== "ready") job.downloadUrl = "";
}

export class JobList {
  constructor({ list, empty, clear, link, socketState, all }) {
    this.list = list;
    this.empty = empty;
    this.clearButton = clear;
    this.link = link;
    this.jobs = new Map(); // id -> model
    this.views = new Map(); // id -> elements of its list item
    this.order = []; // ids, newest first (the order of the list and of localStorage)
    this.dirty = new Set();
    this.scheduled = false;
    this.blocked = false; // a 401 seen: wait for a new API key before reading or connecting
    this.others = new Set(); // ids of other clients' jobs, shown while "All jobs" is on
    this.allButton = all;
    this.othersTimer = 0;
    this.socket = new NotificationSocket({
      url: () => withKey(`/ws/notifications/${encodeURIComponent(clientId)}?progress=1`),
      onFrame: (frame) => this.onFrame(frame),
      onOpen: () => this.refreshActive(),
      onState: (state) => { socketState.dataset.state = state; socketState.title = `Live updates: ${state}`; },
    });
    clear.addEventListener("click", () => this.clearFinished());
    all?.addEventListener("click", () => this.showAll(all.getAttribute("aria-pressed") !== "true"));
    events.addEventListener("unauthorized", () => { this.blocked = true; this.socket.pause(); });
    events.addEventListener("apikey", () => this.unblock());
    setInterval(() => this.tick(), 15_000);
  }

  // --- lifecycle -----------------------------------------------------------------------------

  /** List the stored jobs at once, as last seen, then re-read each from the server. */
  async load() {
    const now = Date.now();
    for (const entry of readJson(STORAGE, [])) {
      if (!entry || typeof entry.id !== "string" || this.jobs.has(entry.id)) continue;
      const job = newJob(entry.id, typeof entry.label === "string" ? entry.label : "",
        typeof entry.aid === "string" ? entry.aid : "");
      if (FINAL.has(entry.state)) {
        job.state = entry.state;
        job.done = Number(entry.done) || 0;
        job.total = Number(entry.total) || 0;
        job.expiresAt = Number(entry.expires) || 0;
        job.downloadUrl = entry.state === "ready" ? `/v1/jobs/${encodeURIComponent(entry.id)}/file` : "";
        if (job.state === "ready" && job.expiresAt && job.expiresAt < now) {
          job.state = "expired"; // the server has deleted it by now; the re-read confirms
          job.downloadUrl = "";
        }
      }
      job.savedState = job.state;
      this.insert(job, false);
    }
    this.flush();
    performance.mark("jmbooru:jobs-listed");
    const byRank = this.order.slice().sort((a, b) => rereadRank(this.jobs.get(a)) - rereadRank(this.jobs.get(b)));
    await this.reread(byRank);
    await this.readServerList();
    performance.mark("jmbooru:jobs-reread");
    if (this.order.length && !this.blocked) this.socket.start();
  }

  async reread(ids) {
    await eachLimited(ids, READ_CONCURRENCY, async (id) => {
      if (this.blocked || !this.jobs.has(id)) return;
      try {
        this.applySnapshot(id, await api(`/v1/jobs/${encodeURIComponent(id)}`));
      } catch (error) {
        if (error.status === 404) this.forget(id); // finished long ago and forgotten by the server
        else if (error.status !== 401) this.note(id, `Could not read this job: ${error.message}`);
      }
    });
  }

  /** This client's jobs the server knows and this browser does not (started in another tab, or
   * before localStorage was cleared), listed after the stored ones. */
  async readServerList() {
    if (this.blocked) return;
    try {
      // Without a key, ask first rather than meet a 401 (and its notice) on every page load.
      if (!apiKey() && (await api("/v1/health")).api_key_required) return;
      const page = await api(`/v1/jobs?client_id=${encodeURIComponent(clientId)}&limit=${SERVER_PAGE}`);
      this.merge(page.jobs, false);
      this.save();
    } catch (error) {
      if (error.status !== 401 && error.status !== 404) console.warn("job list:", error.message);
    }
  }

  /** Add jobs from a GET /v1/jobs page that are not listed yet (``theirs``: other clients'). */
  merge(answers, theirs) {
    for (const data of Array.isArray(answers) ? answers : []) {
      if (typeof data?.job_id !== "string") continue;
      if (!this.jobs.has(data.job_id)) {
        this.insert(newJob(data.job_id), false);
        if (theirs) this.others.add(data.job_id);
      }
      this.applySnapshot(data.job_id, data);
    }
  }

  /** "All jobs": every client's jobs, this browser's first; off again: only this browser's. */
  async showAll(on) {
    this.allButton?.setAttribute("aria-pressed", String(on));
    clearTimeout(this.othersTimer);
    if (!on) {
      for (const id of [...this.others]) this.forget(id);
      this.others.clear();
      return;
    }
    try {
      const page = await api(`/v1/jobs?limit=${SERVER_PAGE}`);
      if (this.allButton?.getAttribute("aria-pressed") !== "true") return; // turned off meanwhile
      this.merge(page.jobs, true);
      if ([...this.others].some((id) => isActive(this.jobs.get(id)))) {
        this.othersTimer = setTimeout(() => this.showAll(true), OTHERS_POLL_MS);
      }
    } catch (error) {
      if (error.status !== 401) this.allButton?.setAttribute("title", `Could not read the job list: ${error.message}`);
    }
  }

  unblock() {
    if (!this.blocked) {
      this.socket.restart();
      return;
    }
    this.blocked = false;
    const unread = this.order.filter((id) => this.jobs.get(id).state === "loading");
    this.reread(unread).then(() => {
      if (this.order.length && !this.blocked) this.socket.start();
    });
  }

  /** After (re)connecting: the socket only carries what happens from now on. */
  refreshActive() {
    this.reread(this.order.filter((id) => {
      const job = this.jobs.get(id);
      return isActive(job) || job.state === "loading";
    }));
  }

  // --- changes -------------------------------------------------------------------------------

  /** A download was accepted (202): list it first and follow it (`albumId`: the JM id it downloads). */
  add(answer, label, albumId = "") {
    const id = answer.job_id;
    let job = this.jobs.get(id);
    this.others.delete(id); // another client's job this browser has now joined is its own too
    if (job) {
      // The same download asked again joins the existing job: move it to the top.
      this.order.splice(this.order.indexOf(id), 1);
      this.order.unshift(id);
      this.list.prepend(this.views.get(id).item);
      if (label) job.label = label;
    } else {
      job = newJob(id, label, albumId);
      this.insert(job, true);
    }
    this.applySnapshot(id, answer);
    this.save();
    this.blocked = false;
    this.socket.start();
    this.reread([id]); // the 202 carries no counters or expiry
    return job;
  }

  applySnapshot(id, data) {
    const job = this.jobs.get(id);
    if (!job) return;
    const snapshotActive = ACTIVE.has(data.state);
    // A snapshot read before a newer frame arrived must not move the job backwards.
    if (snapshotActive && job.seq > 0 && !isActive(job)) return;
    if (snapshotActive && isActive(job) && Number(data.done) < job.done) return;
    assign(job, data);
    this.touch(id);
  }

  onFrame(frame) {
    if (!frame || typeof frame.job_id !== "string") return;
    let job = this.jobs.get(frame.job_id);
    if (!job) {
      // Started with this client id elsewhere (another tab of this browser): list it too.
      job = newJob(frame.job_id);
      this.insert(job, true);
      this.save();
    }
    const seq = Number(frame.seq);
    if (Number.isFinite(seq) && seq > 0) {
      if (seq <= job.seq) return; // a replayed or reordered frame
      job.seq = seq;
    }
    assign(job, frame);
    this.touch(job.id);
  }

  async cancel(id) {
    const view = this.views.get(id);
    view.cancel.disabled = true;
    try {
      this.applySnapshot(id, await api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" }));
    } catch (error) {
      this.note(id, `Could not cancel: ${error.message}`);
    } finally {
      view.cancel.disabled = false;
    }
  }

  remove(id) {
    this.forget(id);
    this.save();
  }

  clearFinished() {
    for (const id of this.order.slice()) {
      if (!isActive(this.jobs.get(id))) this.forget(id);
    }
    this.save();
  }

  note(id, message) {
    const job = this.jobs.get(id);
    if (!job) return;
    job.error = message;
    if (job.state === "loading") job.state = "unknown";
    this.touch(id);
  }

  // --- the list ------------------------------------------------------------------------------

  insert(job, first) {
    this.jobs.set(job.id, job);
    const view = createJobView({ onCancel: () => this.cancel(job.id), onRemove: () => this.remove(job.id) });
    this.views.set(job.id, view);
    if (first) {
      this.order.unshift(job.id);
      this.list.prepend(view.item);
    } else {
      this.order.push(job.id);
      this.list.append(view.item);
    }
    this.touch(job.id);
    this.trim();
  }

  forget(id) {
    const view = this.views.get(id);
    if (!view) return;
    view.item.remove();
    this.views.delete(id);
    this.jobs.delete(id);
    this.others.delete(id);
    this.dirty.delete(id);
    this.order.splice(this.order.indexOf(id), 1);
    this.updateSummary();
  }

  trim() {
    for (let i = this.order.length - 1; i >= 0 && this.order.length > MAX_KEPT; i -= 1) {
      if (!isActive(this.jobs.get(this.order[i]))) this.forget(this.order[i]);
    }
  }

  /** Remember the jobs, with the final state of those that have one (progress is not stored). */
  save() {
    writeJson(STORAGE, this.order.filter((id) => !this.others.has(id)).map((id) => {
      const job = this.jobs.get(id);
      const entry = { id, label: job.label };
      if (job.albumId) entry.aid = job.albumId;
      if (FINAL.has(job.state)) Object.assign(entry, { state: job.state, done: job.done, total: job.total });
      if (job.state === "ready" && job.expiresAt) entry.expires = job.expiresAt;
      return entry;
    }));
  }

  touch(id) {
    this.dirty.add(id);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    this.scheduled = false;
    const now = Date.now();
    let settled = false;
    for (const id of this.dirty) {
      const job = this.jobs.get(id);
      if (job && job.savedState !== job.state && (FINAL.has(job.state) || FINAL.has(job.savedState))) {
        job.savedState = job.state;
        settled = true;
      }
      if (job) renderJob(job, this.views.get(id), now);
    }
    this.dirty.clear();
    if (settled) this.save();
    this.updateSummary();
  }

  updateSummary() {
    const active = this.order.reduce((n, id) => n + (isActive(this.jobs.get(id)) && !this.others.has(id) ? 1 : 0), 0);
    this.empty.hidden = this.order.length > 0;
    this.clearButton.hidden = this.order.length === active;
    setText(this.link, active ? `Jobs (${active})` : "Jobs");
  }

  /** Keep "expires in" current. */
  tick() {
    for (const id of this.order) {
      if (this.jobs.get(id).state === "ready") this.touch(id);
    }
  }
}
