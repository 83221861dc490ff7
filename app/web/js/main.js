// The page: tabs, settings, the server's health, and the JM, booru and jobs parts wired together.

import { api, apiKey, clientId, events, setApiKey, unauthorizedMessage } from "./api.js";
import { setupAlbum } from "./album.js";
import { setupBooru } from "./booru.js";
import { $, setText } from "./dom.js";
import { setupJm } from "./jm.js";
import { JobList } from "./jobs.js";
import { setupPools } from "./pools.js";
import { setupSubscriptions } from "./subscriptions.js";
import { hideNotice, showNotice } from "./notice.js";

const HEALTH_EVERY_MS = 60_000;

// --- settings ------------------------------------------------------------------------------------

const settingsPanel = $("settings");
const settingsButton = $("settings-button");
const keyInput = $("api-key");

function openSettings(open = settingsPanel.hidden) {
  settingsPanel.hidden = !open;
  settingsButton.setAttribute("aria-expanded", String(open));
  if (open) {
    keyInput.value = apiKey();
    keyInput.focus();
  }
}

settingsButton.addEventListener("click", () => openSettings());
$("settings-close").addEventListener("click", () => openSettings(false));
$("api-key-show").addEventListener("change", (event) => keyInput.classList.toggle("secret", !event.target.checked));
$("settings-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(keyInput.value);
  hideNotice();
  openSettings(false);
});
$("client-id").textContent = clientId;
events.addEventListener("unauthorized", () => {
  showNotice(unauthorizedMessage(), { label: "Open Settings", run: () => openSettings(true) });
});

// --- tabs ----------------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
const onTab = new Map();

function selectTab(tab, focus = false) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  const hashes = { "tab-booru": "#booru", "tab-subs": "#subscriptions" };
  history.replaceState(null, "", hashes[tab.id] ?? location.pathname);
  onTab.get(tab.id)?.();
}

for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) selectTab(tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length], true);
  });
}

// --- health and latency --------------------------------------------------------------------------

const health = $("health");

async function checkHealth() {
  try {
    const info = await api("/v1/health");
    const started = performance.now();
    const clock = await api(`/v1/${Date.now()}`);
    const roundTrip = Math.round(performance.now() - started);
    const skew = Number(clock.latency) - roundTrip / 2; // the server's clock minus ours, roughly
    const parts = [`Server ${info.status}`, `v${info.version}`, info.mode, `${roundTrip} ms`];
    if (Math.abs(skew) > 2000) parts.push(`clocks differ by ${Math.round(skew / 1000)} s`);
    setText(health, parts.filter(Boolean).join(" · "));
    health.dataset.state = info.status === "ok" ? "ok" : "bad";
  } catch (error) {
    setText(health, error.status ? `Server: ${error.message}` : "Server unreachable");
    health.dataset.state = "bad";
  }
}

// --- wiring --------------------------------------------------------------------------------------

const jobs = new JobList({
  list: $("jobs"), empty: $("jobs-empty"), clear: $("jobs-clear"), link: $("jobs-link"), socketState: $("socket-state"),
  all: $("jobs-all"),
});
let jm = null;
const album = setupAlbum({ jobs, searchFor: (query) => jm.search(query) });
jm = setupJm({ jobs, openAlbum: album.open });
const booru = setupBooru({ jobs });
onTab.set("tab-booru", () => booru.activate());
const subscriptions = setupSubscriptions({ jobs });
const pools = setupPools({ jobs });
// "Save to library" appears where the server has a reader library (JMBOORU_LIBRARY_DIR).
api("/v1/health").then((info) => {
  const library = Boolean(info?.library);
  pools.setLibrary(library);
  $("album-library").hidden = !library;
}).catch(() => {});
$("album-library").addEventListener("click", async () => {
  const aid = ($("album-id").textContent || "").replace(/^JM/, "");
  const title = $("album-title").textContent || `JM${aid}`;
  try {
    const answer = await api(`/v1/download/album/${encodeURIComponent(aid)}`,
      { method: "POST", body: { client_id: clientId, dest: "library" } });
    jobs.add(answer, `${title} → library`, aid);
    showNotice(`${title} is being filed into the library, one book per chapter.`);
  } catch (error) {
    showNotice(`Could not file ${title} into the library: ${error.message}`);
  }
});
onTab.set("tab-subs", () => subscriptions.load());

if (location.hash === "#booru") selectTab($("tab-booru"));
if (location.hash === "#subscriptions") selectTab($("tab-subs"));
checkHealth();
setInterval(checkHealth, HEALTH_EVERY_MS);
jobs.load();
document.documentElement.dataset.ready = "true";
performance.mark("jmbooru:interactive"); // read by bench/bench_web.py, shown in DevTools
