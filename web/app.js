// framewire's page: connect, browse, choose frames, make a video, watch it.
//
// Every state has a URL: ?host=H&port=P&user=U&path=FOLDER[&file=NAME][&job=VSID].
// A reload, a second tab or a link lands there again, on a session already open
// to that host account (GET /remotes) or after connecting to it.
import { ApiError, age, bytes, call, globRegExp, naturalCompare, pathUrl } from "./api.js";
import { icon } from "./icons.js";
import { IMAGE, Listing, element } from "./listing.js";
import { Preview } from "./preview.js";
import { Thumbnails } from "./thumbs.js";

const $ = (id) => document.getElementById(id);
const RECENT_KEY = "framewire.recentHosts";
const SESSION_KEY = "framewire.session";

const state = {
  session: null,      // {sid, hostname, port, username}
  path: "",
  selection: null,    // {mode: "files", files} or {mode: "pattern", directory, pattern, files}
  job: null,          // {sid, vsid, status}
  stream: null,
  again: null,        // the request of the job being made again
  browsing: 0,        // the newest folder request: older answers are dropped
};

function showError(id, error) {
  const box = $(id);
  box.replaceChildren();
  if (!error) { box.hidden = true; return; }
  const message = error instanceof ApiError ? error.message : String(error.message || error);
  box.append(element("strong", {}, message));
  if (error.hint) box.append(element("span", {}, error.hint));
  box.hidden = false;
}

const baseName = (path) => path.slice(path.lastIndexOf("/") + 1);
const dirName = (path) => path.slice(0, path.lastIndexOf("/")) || "/";
const thumbs = new Thumbnails();
const preview = new Preview($("preview"), $("preview-text"));
const listing = new Listing($("listing-scroll"), $("listing"), $("listing-summary"), {
  thumbs,
  onOpen: (path) => openFolder(path),
  onToggle: (path, on) => toggle(path, on),
  isChosen: (path) => chosen().has(path),
});

// -- the URL ----------------------------------------------------------------

function hostKey(target) {
  return `${target.username}@${target.hostname}:${target.port}`;
}

/** The page's state as a URL; ``push`` makes a step Back returns to. */
function writeUrl(push = false) {
  const params = new URLSearchParams();
  const where = state.session || pendingTarget();
  if (where && where.hostname) {
    params.set("host", where.hostname);
    params.set("port", String(where.port));
    if (where.username) params.set("user", where.username);
  }
  if (state.path) params.set("path", state.path);
  if (listing.highlight && state.path && dirName(listing.highlight) === state.path) {
    params.set("file", baseName(listing.highlight));
  }
  if (state.job) params.set("job", state.job.vsid);
  const url = `${location.pathname}${params.toString() ? "?" + params : ""}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}

function readUrl() {
  const params = new URLSearchParams(location.search);
  const port = Number(params.get("port")) || 22;
  return {
    target: params.get("host") ? { hostname: params.get("host"), port,
                                   username: params.get("user") || "" } : null,
    path: params.get("path") || "",
    file: params.get("file") || "",
    job: params.get("job") || "",
  };
}

let pending = null;  // what the URL asked for, kept until a session can open it
function pendingTarget() { return pending && pending.target; }

// -- who am I ---------------------------------------------------------------

async function whoAmI() {
  try {
    const me = await call("GET", "/me");
    $("who").textContent = me.mode === "users" ? `Logged in as ${me.user}` : "";
    $("logout").hidden = false;
    return true;
  } catch (error) {
    if (error.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(location.pathname
                                                                + location.search)}`);
      return false;
    }
    showError("connect-error", error);
    return false;
  }
}

$("logout").addEventListener("click", async () => {
  await call("POST", "/logout").catch(() => null);
  sessionStorage.removeItem(SESSION_KEY);
  window.location.assign("/login");
});

// -- connect ----------------------------------------------------------------

function recentHosts() {
  try { return JSON.parse(localStorage.getItem(RECENT_KEY)) || []; } catch (e) { return []; }
}

function remember(host) {
  const others = recentHosts().filter((h) => hostKey(h) !== hostKey(host));
  localStorage.setItem(RECENT_KEY, JSON.stringify([host, ...others].slice(0, 8)));
  fillRecent();
}

function fillRecent() {
  const hosts = recentHosts();
  $("recent-hosts").replaceChildren(...hosts.map((h) => element("option", {
    value: h.hostname, label: `${h.username}@${h.hostname}:${h.port}` })));
  if (hosts.length && !$("hostname").value) fillTarget(hosts[0]);
}

function fillTarget(target) {
  $("hostname").value = target.hostname;
  $("port").value = target.port;
  $("username").value = target.username || "";
}

$("hostname").addEventListener("change", () => {
  const known = recentHosts().find((h) => h.hostname === $("hostname").value);
  if (known) { $("port").value = known.port; $("username").value = known.username; }
});

async function connected(sid, target) {
  state.session = { sid, ...target };
  thumbs.reset(sid);
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
  remember(target);
  $("connect-form").hidden = true;
  $("challenge-form").hidden = true;
  $("connect-note").hidden = true;
  showError("connect-error", null);
  $("connected").replaceChildren(`Connected to ${target.username ? target.username + "@" : ""}`
    + `${target.hostname}${target.port !== 22 ? ":" + target.port : ""}.`, " ",
  element("button", { type: "button", class: "quiet", id: "disconnect", onclick: disconnect },
    "Disconnect"));
  $("connected").hidden = false;
  $("browse").hidden = false;
  const info = await call("GET", `/remotes/${sid}`);
  showPlacement(info.agent);
  const wanted = pending && (!pending.target || hostKey(pending.target) === hostKey(target))
    ? pending : null;
  pending = null;
  const home = (info.agent.work_dir || "").replace(/\/\.cache\/framewire.*$/, "");
  const path = (wanted && wanted.path) || state.path || home || "/";
  const opening = openFolder(wanted && wanted.file ? `${path.replace(/\/$/, "")}/${wanted.file}`
    : path, { quiet: Boolean(wanted) });
  if (wanted && wanted.job) await openJob(wanted.job, { push: false });
  await opening;
  writeUrl();
}

async function disconnect() {
  if (state.session) await call("DELETE", `/remotes/${state.session.sid}`).catch(() => null);
  sessionStorage.removeItem(SESSION_KEY);
  state.session = null;
  thumbs.reset(null);
  closeJob();
  $("connected").hidden = true;
  $("connect-form").hidden = false;
  for (const id of ["browse", "options"]) $(id).hidden = true;
  writeUrl();
}

function askChallenge(challenge, target) {
  const form = $("challenge-form");
  $("challenge-text").textContent = [challenge.name, challenge.instructions]
    .filter(Boolean).join(": ") || "The host asks:";
  $("challenge-prompts").replaceChildren(...challenge.prompts.map((p, i) => element("label", {},
    p.prompt, element("input", { name: `answer${i}`, type: p.echo ? "text" : "password",
      autocomplete: p.echo ? "one-time-code" : "current-password", required: "" }))));
  form.hidden = false;
  $("connect-form").hidden = true;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const responses = challenge.prompts.map((p, i) => form.elements[`answer${i}`].value);
    await login({ challenge: challenge.id, responses }, target);
  };
  form.querySelector("input")?.focus();
}

async function login(body, target) {
  showError("connect-error", null);
  $("connect-button").disabled = true;
  try {
    const { sid } = await call("POST", "/remotes", body);
    await connected(sid, target);
  } catch (error) {
    if (error.code === "remote-challenge" && error.body.challenge) {
      askChallenge(error.body.challenge, target);
      return;
    }
    $("challenge-form").hidden = true;
    $("connect-form").hidden = false;
    showError("connect-error", error);
    if (error.code === "remote-auth-failed") $("password").select();
  } finally {
    $("connect-button").disabled = false;
  }
}

$("connect-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const target = { hostname: $("hostname").value.trim(), port: Number($("port").value) || 22,
                   username: $("username").value.trim() };
  const body = { ...target };
  if ($("password").value) body.password = $("password").value;
  $("password").value = "";
  await login(body, target);
});

/** A session already open to ``target`` (any, if null): the one this tab used, else
 * the newest the server lists. */
async function openSession(target) {
  const saved = (() => {
    try { return JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch (e) { return null; }
  })();
  const fits = (s) => !target || hostKey(s) === hostKey({ ...target,
    username: target.username || s.username });
  if (saved && fits(saved)) {
    try {
      await call("GET", `/remotes/${saved.sid}`);
      return saved;
    } catch (error) {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }
  try {
    const { remotes } = await call("GET", "/remotes");
    const found = remotes.find(fits);
    return found ? { sid: found.sid, hostname: found.hostname, port: found.port,
                     username: found.username } : null;
  } catch (error) {
    return null;
  }
}

// -- browse -----------------------------------------------------------------

/** Open a folder (or a file's folder, the file highlighted). A path that cannot be
 * opened leaves the listing and the box as they were, and says why. */
async function openFolder(path, { quiet = false } = {}) {
  const request = ++state.browsing;
  showError("browse-error", null);
  $("listing-scroll").setAttribute("aria-busy", "true");
  try {
    const sid = state.session.sid;
    let answer = await call("POST", `/remotes/${sid}/browse${pathUrl(path)}`, {});
    let highlight = null;
    const asked = path.replace(/\/+$/, "") || "/";
    if (answer.path !== asked && answer.names.length === 1 && answer.types[0] === "f"
        && asked === `${answer.path.replace(/\/$/, "")}/${answer.names[0]}`) {
      // A file: its folder, with the file picked out.
      highlight = asked;
      answer = await call("POST", `/remotes/${sid}/browse${pathUrl(answer.path)}`, {});
    }
    if (request !== state.browsing) return;  // a newer request went out meanwhile
    state.path = answer.path;
    const prefix = answer.path.endsWith("/") ? answer.path : answer.path + "/";
    const entries = answer.names.map((name, i) => ({
      name, size: answer.sizes[i], type: answer.types[i], path: prefix + name }));
    $("path").value = state.path;
    const images = entries.filter((e) => e.type === "f" && IMAGE.test(e.name));
    if (images.length && !images.some((e) => globRegExp($("pattern").value).test(e.name))) {
      $("pattern").value = "*" + images[0].name.slice(images[0].name.lastIndexOf("."));
    }
    const parent = state.path === "/" ? null : state.path.replace(/\/[^/]*\/?$/, "") || "/";
    listing.setEntries(state.path, entries, parent, highlight);
    renderCrumbs();
    if (!quiet) writeUrl(true);
  } catch (error) {
    if (request !== state.browsing) return;
    $("path").value = state.path;
    // Said where it was typed; what was on screen stays.
    const still = state.path ? ` Still showing ${state.path}.` : "";
    showError("browse-error", { message: error.message,
      hint: (error.hint || "Check the path (it is case-sensitive) and open it again.") + still });
  } finally {
    if (request === state.browsing) $("listing-scroll").removeAttribute("aria-busy");
  }
}

function renderCrumbs() {
  const parts = state.path.split("/").filter(Boolean);
  const items = [element("li", {}, element("button", { type: "button",
    onclick: () => openFolder("/") }, "/"))];
  parts.forEach((part, i) => {
    const target = "/" + parts.slice(0, i + 1).join("/");
    items.push(element("li", {}, element("button", { type: "button",
      "aria-current": i === parts.length - 1 ? "location" : null,
      onclick: () => openFolder(target) }, part)));
  });
  $("crumbs").replaceChildren(...items);
}

$("path-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const path = $("path").value.trim();
  if (path) openFolder(path.startsWith("/") ? path : "/" + path);
});
$("filter").addEventListener("input", () => listing.setFilter($("filter").value));

// -- the selection ------------------------------------------------------------

function chosen() {
  if (!state.selection) return new Set();
  if (!state.selection.set) state.selection.set = new Set(state.selection.files);
  return state.selection.set;
}

function toggle(path, on) {
  // Unticking one frame of a pattern's selection keeps the others (they become a list).
  const files = state.selection && (state.selection.mode === "files"
    || dirName(path) === state.selection.directory)
    ? new Set(state.selection.files) : new Set();
  if (on) files.add(path); else files.delete(path);
  const sorted = [...files].sort(naturalCompare);
  setSelection(sorted.length ? { mode: "files", files: sorted } : null);
}

$("select-pattern").addEventListener("click", () => {
  const pattern = $("pattern").value.trim() || "*";
  const regex = globRegExp(pattern);
  const files = listing.images().filter((e) => regex.test(e.name)).map((e) => e.path)
    .sort(naturalCompare);
  if (!files.length) {
    showError("browse-error", { message: `No file in ${state.path} matches ${pattern}.`,
                                hint: "Change the pattern, or open another folder." });
    return;
  }
  showError("browse-error", null);
  setSelection({ mode: "pattern", directory: state.path, pattern, files });
});
$("select-none").addEventListener("click", () => setSelection(null));

/** Frames of the selection the page knows cannot be used (their thumbnails said so). */
function warnUnusable() {
  const warning = $("selection-warning");
  const bad = state.selection ? state.selection.files.filter((path) => {
    const known = thumbs.get(path);
    return known && known.error && known.error.code !== "request";
  }) : [];
  warning.hidden = bad.length === 0;
  if (!bad.length) return;
  const names = bad.slice(0, 5).map(baseName).join(", ") + (bad.length > 5
    ? ` and ${bad.length - 5} more` : "");
  warning.replaceChildren(element("strong", {}, `${bad.length} of these frames cannot be `
    + `used: ${names}.`), element("span", {}, "The video would fail on them: untick them, "
    + "or change the pattern."));
}
thumbs.subscribe((path, entry) => {
  if (entry.error && state.selection && chosen().has(path)) warnUnusable();
});

function folderText(files) {
  const folders = new Set(files.map(dirName));
  return folders.size === 1 ? `in ${[...folders][0]}` : `across ${folders.size} folders`;
}

function setSelection(selection) {
  state.selection = selection;
  listing.refreshChecks();
  const box = $("selection");
  if (!selection) { box.hidden = true; $("options").hidden = true; return; }
  const files = selection.files;
  $("selection-text").textContent = `${files.length.toLocaleString("en")} frame`
    + `${files.length === 1 ? "" : "s"}`
    + (selection.mode === "pattern" ? ` matching ${selection.pattern}` : " selected")
    + ` ${selection.mode === "pattern" ? "in " + selection.directory : folderText(files)}`
    + `, from ${baseName(files[0])} to ${baseName(files[files.length - 1])}, in natural order.`;
  const samples = Math.min(8, files.length);
  const picks = [...new Set(Array.from({ length: samples },
    (_, i) => Math.round(i * (files.length - 1) / Math.max(1, samples - 1))))];
  const slots = picks.map((i) => element("li", { "data-path": files[i] },
    element("span", { class: "thumb" }), `#${(i + 1).toLocaleString("en")}`));
  $("strip").replaceChildren(...slots);
  box.hidden = false;
  $("options").hidden = false;
  warnUnusable();
  // The order strip first: one request for the frames not already shown.
  const paths = picks.map((i) => files[i]);
  thumbs.now(paths).then((known) => {
    if (state.selection !== selection) return;
    known.forEach((entry, i) => {
      if (!entry) return;
      slots[i].querySelector(".thumb").replaceChildren(entry.url
        ? element("img", { src: entry.url, alt: baseName(paths[i]) })
        : icon("warning", `${baseName(paths[i])} cannot be used`));
    });
  });
}

// -- where it runs -------------------------------------------------------------

// A host with Slurm offers its compute nodes: the executor, a partition (with its
// time limit) and a time; a host without shows nothing of it.
function showPlacement(agent) {
  const slurm = agent && agent.slurm;
  const partitions = (slurm && slurm.partitions) || [];
  $("placement").hidden = partitions.length === 0;
  if (partitions.length === 0) return;
  $("executor").value = agent.executor === "slurm" ? "slurm" : "local";
  $("partition").replaceChildren(...partitions.map((p) => element("option", {
    value: p.name, selected: p.name === slurm.default_partition ? "" : undefined,
  }, `${p.name}${p.default ? " (default)" : ""} · `
     + (p.max_time == null ? "no time limit" : `up to ${p.max_time_text}`)
     + (p.state && p.state !== "UP" ? ` · ${p.state.toLowerCase()}` : ""))));
  syncPlacement();
}

function syncPlacement() {
  const slurm = $("executor").value === "slurm";
  $("partition").disabled = !slurm;
  $("slurm-time").disabled = !slurm;
}
$("executor").addEventListener("change", syncPlacement);

function placementRequest(body) {
  if ($("placement").hidden) return;
  body.executor = $("executor").value;
  if (body.executor !== "slurm") return;
  const chunks = Number($("chunks").value);
  if (chunks > 1) body.chunks = chunks;
  body.slurm = { partition: $("partition").value };
  const limit = $("slurm-time").value.trim();
  if (limit) body.slurm.time = limit;
}

function duration(seconds) {
  if (seconds == null) return "";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// What Slurm says of a job: its id, partition and reason while it waits, its
// node once it runs.
function schedulerText(status) {
  const s = status.scheduler;
  if (!s) return "";
  const ids = (s.job_ids || []).join(", ");
  const parts = [`Slurm job ${ids}`];
  if (s.partition) parts.push(`partition ${s.partition}`);
  if (status.status === "queued" && s.reason_text) parts.push(s.reason_text);
  if (s.waited_seconds != null) {
    parts.push(status.status === "queued" ? `waiting ${duration(s.waited_seconds)}`
      : `waited ${duration(s.waited_seconds)}`);
  }
  if (status.status === "queued" && s.expected_start) {
    parts.push(`expected to start ${new Date(s.expected_start).toLocaleTimeString()}`);
  }
  if (s.nodes && s.nodes.length) parts.push(`on ${s.nodes.join(", ")}`);
  return parts.join(" · ");
}

// A chunked job's parts: how many are done, running (and where), waiting.
function chunksText(status) {
  const chunks = (status.chunks || []).filter((item) => item.index !== null);
  if (!chunks.length) return "";
  const count = (state) => chunks.filter((item) => item.state === state).length;
  const nodes = [...new Set(chunks.filter((item) => item.state === "running" && item.node)
    .map((item) => item.node))];
  const running = count("running") ? `${count("running")} running` +
    (nodes.length ? ` on ${nodes.join(", ")}` : "") : "";
  const retried = chunks.filter((item) => item.attempts > 1).length;
  return [`${chunks.length} chunks: ${count("succeeded")} done`, running,
    count("queued") ? `${count("queued")} waiting` : "",
    retried ? `${retried} retried` : ""].filter(Boolean).join(", ");
}

// -- the video --------------------------------------------------------------

$("crf").addEventListener("input", () => { $("crf-value").textContent = $("crf").value; });

// Each format's CRF scale and default, as the API has them (agent/options.py).
const CRF_SCALES = { "video/mp4": { max: 51, value: 23 }, "video/webm": { max: 63, value: 32 } };

/** The quality slider on the chosen format's scale: at ``value``, else its default. */
function syncQuality(value) {
  const scale = CRF_SCALES[$("format").value] || CRF_SCALES["video/mp4"];
  $("crf").max = String(scale.max);
  $("crf").value = String(value ?? scale.value);
  $("crf-value").textContent = $("crf").value;
}
$("format").addEventListener("change", () => syncQuality());

// The options the form sets; "make again" carries over the others a job was made with.
const FORM_FIELDS = ["content-type", "images", "frame-rate", "crf", "fit", "pixel-format",
                     "width", "height", "preset", "poster", "executor", "chunks", "slurm"];

function videoRequest() {
  const s = state.selection;
  const kept = {};
  if (state.again) {
    for (const [key, value] of Object.entries(state.again)) {
      if (!FORM_FIELDS.includes(key)) kept[key] = value;
    }
  }
  const body = {
    ...kept,
    "content-type": $("format").value,
    images: s.mode === "pattern"
      ? { directory: s.directory, pattern: s.pattern, sort: "natural" } : s.files,
    "frame-rate": Number($("frame-rate").value) || 25,
    crf: Number($("crf").value),
    fit: $("fit").value,
    "pixel-format": $("pixel-format").value,
  };
  if ($("width").value) body.width = Number($("width").value);
  if ($("height").value) body.height = Number($("height").value);
  if ($("preset").value && body["content-type"] === "video/mp4") body.preset = $("preset").value;
  body.poster = $("poster").checked;
  placementRequest(body);
  return body;
}

$("video-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  // A new request: whatever the last one showed is gone, its result included.
  closeJob();
  showError("video-error", null);
  $("make").disabled = true;
  try {
    const { sid: vsid } = await call("POST", `/remotes/${state.session.sid}/videos`, videoRequest());
    state.again = null;
    $("again-note").hidden = true;
    refreshJobs();
    await openJob(vsid);
  } catch (error) {
    showError("video-error", error);
    writeUrl();
  } finally {
    $("make").disabled = false;
  }
});

function eta(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

function showStatus(status) {
  $("bar").value = status.progress || 0;
  const frames = status.frames_total ? `${status.frames_done} of ${status.frames_total} frames` : "";
  const parts = [status.message, frames, `${Math.floor(status.progress || 0)}%`, eta(status.eta_seconds)];
  $("progress-text").textContent = parts.filter(Boolean).join(" · ");
  // Why the job has fewer chunks than asked (or none), when it has.
  const split = status.chunking && status.chunking.note;
  const scheduler = [schedulerText(status), chunksText(status), split].filter(Boolean)
    .join(" · ");
  $("scheduler-text").textContent = scheduler;
  $("scheduler-text").hidden = !scheduler;
  $("progress").dataset.status = status.status;
  $("progress").dataset.frames = String(status.frames_done || 0);
}

// A job's status is its last word when it can no longer succeed or has: the
// server's ok and ready say so (no list of final states to keep in step here).
function isFinal(status) {
  return !status.ok || status.ready;
}

/** Forget the job on screen: its stream, preview, progress and result. */
function closeJob() {
  if (state.stream) state.stream.close();
  state.stream = null;
  state.job = null;
  preview.stop();
  $("progress").hidden = true;
  $("result").hidden = true;
  $("job-info").hidden = true;
  $("player").removeAttribute("src");
  $("player").removeAttribute("poster");
  $("player").load();
  showError("progress-error", null);
  showError("job-error", null);
}

function follow(sid, vsid, first = null) {
  if (state.stream) state.stream.close();
  state.job = { sid, vsid, status: first };
  $("progress").hidden = false;
  $("result").hidden = true;
  $("cancel").hidden = false;
  showError("progress-error", null);
  showStatus(first || { progress: 0, message: "Queued." });
  const stream = new EventSource(`/remotes/${sid}/videos/${vsid}/events`);
  state.stream = stream;
  stream.addEventListener("status", (event) => {
    if (state.stream !== stream) return;
    const status = JSON.parse(event.data);
    state.job.status = status;
    showStatus(status);
    if (isFinal(status)) {
      stream.close();
      finished(status);
    } else {
      preview.update(status.preview);
    }
  });
  stream.addEventListener("end", (event) => {
    // The stream cannot go on (its agent stopped): the job does.
    stream.close();
    const end = JSON.parse(event.data);
    showError("progress-error", { message: end.message,
                                  hint: "Reload the page or connect again to follow it." });
  });
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED && state.stream === stream) {
      showError("progress-error", { message: "Lost the progress stream.",
                                    hint: "Reload the page; the job goes on." });
    }
  };
}

function finished(status) {
  $("cancel").hidden = true;
  $("delete").hidden = status.status === "expired";
  preview.stop();
  refreshJobs();
  if (status.status !== "succeeded") {
    const detail = status.status === "failed" && status.stderr
      ? status.stderr.trim().split("\n").slice(-1)[0] : null;
    showError("progress-error", { message: status.message, hint: detail });
    return;
  }
  const { vsid } = state.job;
  const video = status.outputs.find((o) => o.kind === "video") || status.outputs[0];
  const poster = status.outputs.find((o) => o.kind === "poster");
  const player = $("player");
  player.poster = poster ? poster.url : "";
  player.src = video.url;
  const extension = video.content_type === "video/webm" ? "webm" : "mp4";
  $("download").href = video.url;
  $("download").setAttribute("download", `framewire-${vsid.slice(0, 8)}.${extension}`);
  $("result-text").textContent = `${video.width}×${video.height}, ${status.frames_total} frames `
    + `at ${status.frame_rate} fps, ${bytes(video.size)}.`;
  $("result").hidden = false;
  $("result").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

$("cancel").addEventListener("click", async () => {
  if (!state.job) return;
  $("cancel").disabled = true;
  try {
    await call("POST", `/remotes/${state.job.sid}/videos/${state.job.vsid}/cancel`, {});
  } catch (error) {
    showError("progress-error", error);
  } finally {
    $("cancel").disabled = false;
  }
});

// -- one job: opened from "Your videos" or a link ------------------------------

const OPTION_LABELS = [
  ["content-type", "Format"], ["frame-rate", "Frames per second"], ["crf", "Quality (CRF)"],
  ["width", "Width"], ["height", "Height"], ["fit", "Fit"], ["pixel-format", "Pixel format"],
  ["preset", "Preset"], ["poster", "Poster"], ["executor", "Run on"], ["chunks", "Chunks"],
];

function imagesText(images) {
  if (Array.isArray(images)) {
    return images.length ? `${images.length} frames ${folderText(images)}` : "";
  }
  if (images && typeof images === "object") {
    return `${images.pattern || "*"} in ${images.directory}`;
  }
  return "";
}

function showRequest(request) {
  const rows = [];
  const images = imagesText(request.images);
  if (images) rows.push(["Frames", images]);
  for (const [key, label] of OPTION_LABELS) {
    if (request[key] === undefined || request[key] === null) continue;
    rows.push([label, typeof request[key] === "boolean" ? (request[key] ? "yes" : "no")
      : String(request[key])]);
  }
  if (request.slurm && request.slurm.partition) rows.push(["Partition", request.slurm.partition]);
  const others = Object.keys(request).filter((key) => !FORM_FIELDS.includes(key));
  if (others.length) rows.push(["Also set", others.join(", ")]);
  $("job-options").replaceChildren(...rows.flatMap(([term, value]) => [
    element("dt", {}, term), element("dd", {}, value)]));
  $("again").hidden = !request.images;
  $("job-options-empty").hidden = rows.length > 0;
}

/** Open a job by id on this session: its status, player, options, and the
 * actions its state allows. */
async function openJob(vsid, { push = true } = {}) {
  const sid = state.session.sid;
  closeJob();
  state.job = { sid, vsid, status: null };
  writeUrl(push);
  let status;
  try {
    status = await call("GET", `/remotes/${sid}/videos/${vsid}/status`);
  } catch (error) {
    $("job-info").hidden = false;
    $("job-title-id").textContent = vsid.slice(0, 8);
    $("job-options").replaceChildren();
    $("again").hidden = true;
    $("delete").hidden = true;
    showError("job-error", error.status === 404
      ? { message: error.message, hint: `No video ${vsid.slice(0, 8)} on this host account: `
          + "it may have been deleted, or made on another host." } : error);
    return;
  }
  if (!state.job || state.job.vsid !== vsid) return;
  $("job-info").hidden = false;
  $("job-title-id").textContent = vsid.slice(0, 8);
  const request = status.request || {};
  showRequest(request);
  if (isFinal(status)) {
    state.job.status = status;
    state.job.request = request;
    $("progress").hidden = false;
    showStatus(status);
    finished(status);
  } else {
    $("delete").hidden = true;
    follow(sid, vsid, status);
    state.job.request = request;
    preview.update(status.preview);
  }
}

$("delete").addEventListener("click", async () => {
  if (!state.job) return;
  const { sid, vsid } = state.job;
  try {
    await call("DELETE", `/remotes/${sid}/videos/${vsid}`);
    await openJob(vsid);
  } catch (error) {
    showError("job-error", error);
  }
  refreshJobs();
});

/** Make it again: its folder and frames chosen, the form filled with its options. */
$("again").addEventListener("click", async () => {
  const request = (state.job && state.job.request) || {};
  const images = request.images;
  const folder = Array.isArray(images) ? dirName(images[0]) : images.directory;
  await openFolder(folder);
  if (state.path !== folder) return;  // the folder is gone: the error says so
  if (Array.isArray(images)) {
    setSelection({ mode: "files", files: images });
  } else {
    $("pattern").value = images.pattern || "*";
    $("select-pattern").click();
  }
  $("format").value = request["content-type"] || "video/mp4";
  $("frame-rate").value = request["frame-rate"] ?? 25;
  syncQuality(request.crf);
  $("width").value = request.width ?? "";
  $("height").value = request.height ?? "";
  $("fit").value = request.fit || "contain";
  $("pixel-format").value = request["pixel-format"] || "yuv420p";
  $("preset").value = request.preset || "";
  $("poster").checked = request.poster !== false;
  if (request.fit || request["pixel-format"] || request.preset || request.poster === false) {
    $("video-form").querySelector("details").open = true;  // what it set, in sight
  }
  if (!$("placement").hidden && request.executor) {
    $("executor").value = request.executor;
    $("chunks").value = request.chunks || 1;
    if (request.slurm && request.slurm.partition) $("partition").value = request.slurm.partition;
    $("slurm-time").value = (request.slurm && request.slurm.time) || "";
    syncPlacement();
  }
  state.again = request;
  const others = Object.keys(request).filter((key) => !FORM_FIELDS.includes(key));
  $("again-note").textContent = `Made again from video ${state.job.vsid.slice(0, 8)}`
    + (others.length ? `; it also keeps ${others.join(", ")}.` : ".");
  $("again-note").hidden = false;
  $("options").scrollIntoView({ behavior: "smooth", block: "start" });
  $("make").focus({ preventScroll: true });
});

// -- the list of videos ------------------------------------------------------

function jobLink(job) {
  const params = new URLSearchParams({ host: job.hostname, port: String(job.port || 22),
                                       user: job.username, job: job.sid });
  return `${location.pathname}?${params}`;
}

async function refreshJobs() {
  try {
    const storage = await call("GET", "/storage");
    const rows = storage.videos.slice(0, 50).map((job) => element("tr", {
      "data-vsid": job.sid },
    element("td", {}, element("a", { href: jobLink(job), onclick: (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      goTo(new URL(jobLink(job), location.href));
    } }, element("code", {}, job.sid.slice(0, 8)))),
    element("td", {}, `${job.username}@${job.hostname}`),
    element("td", { class: `status-${job.status}` }, job.status),
    element("td", {}, element("time", { datetime: job.created }, age(job.created))),
    element("td", {}, job.size ? bytes(job.size) : "")));
    $("job-rows").replaceChildren(...rows);
    $("jobs-empty").hidden = rows.length > 0;
  } catch (error) {
    $("jobs-empty").textContent = error.message;
  }
}

// -- start --------------------------------------------------------------------

/** Land where ``url`` says: on this session if it is the host's, else on one the
 * server has open to it, else at the connect form, filled in. */
async function goTo(url) {
  history.pushState(null, "", url.pathname + url.search);
  await land();
}

// One landing at a time: a link clicked while the page still connects waits for it.
let landing = Promise.resolve();
function land() {
  landing = landing.then(landOnce, landOnce);
  return landing;
}

async function landOnce() {
  const wanted = readUrl();
  const here = state.session;
  if (here && (!wanted.target || hostKey({ ...wanted.target,
    username: wanted.target.username || here.username }) === hostKey(here))) {
    if (wanted.path && wanted.path !== state.path) {
      await openFolder(wanted.file ? `${wanted.path.replace(/\/$/, "")}/${wanted.file}`
        : wanted.path, { quiet: true });
    }
    if (wanted.job && (!state.job || state.job.vsid !== wanted.job)) {
      await openJob(wanted.job, { push: false });
    }
    if (!wanted.job && state.job) closeJob();
    return;
  }
  pending = wanted;
  const session = await openSession(wanted.target);
  if (session) {
    await connected(session.sid, { hostname: session.hostname, port: session.port,
                                   username: session.username });
    return;
  }
  if (here) {
    // Another host: its own session is needed first.
    $("connected").hidden = true;
    $("connect-form").hidden = false;
  }
  if (wanted.target) {
    fillTarget(wanted.target);
    $("connect-note").textContent = `Connect to ${wanted.target.hostname} to open `
      + (wanted.job ? `video ${wanted.job.slice(0, 8)}.` : `${wanted.path || "it"}.`);
    $("connect-note").hidden = false;
  }
  ($("hostname").value ? $("password") : $("hostname")).focus();
}

window.addEventListener("popstate", () => land());

async function start() {
  if (!(await whoAmI())) return;
  fillRecent();
  refreshJobs();
  await land();
}

start();
