// framewire's page: connect, browse, choose frames, make a video, watch it.
import { ApiError, age, bytes, call, globRegExp, naturalCompare, pathUrl } from "./api.js";

const $ = (id) => document.getElementById(id);
const RECENT_KEY = "framewire.recentHosts";
const SESSION_KEY = "framewire.session";
const IMAGE = /\.(png|jpe?g)$/i;

const state = {
  session: null,      // {sid, hostname, port, username}
  path: "",
  entries: [],        // [{name, path, size, type}]
  selection: null,    // {mode: "files", files: [...]} or {mode: "pattern", directory, pattern, files}
  job: null,          // {sid, vsid}
  stream: null,
};

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(id, error) {
  const box = $(id);
  box.replaceChildren();
  if (!error) { box.hidden = true; return; }
  const message = error instanceof ApiError ? error.message : String(error.message || error);
  box.append(element("strong", {}, message));
  if (error.hint) box.append(element("span", {}, error.hint));
  box.hidden = false;
}

function imageUrl(path, size) {
  return `/remotes/${state.session.sid}/image${pathUrl(path)}?max-size=${size}`;
}

// -- who am I ---------------------------------------------------------------

async function whoAmI() {
  try {
    const me = await call("GET", "/me");
    $("who").textContent = me.mode === "users" ? `Logged in as ${me.user}` : "";
    $("logout").hidden = false;
    return true;
  } catch (error) {
    if (error.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
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
  const others = recentHosts().filter((h) => !(h.hostname === host.hostname
    && h.port === host.port && h.username === host.username));
  localStorage.setItem(RECENT_KEY, JSON.stringify([host, ...others].slice(0, 8)));
  fillRecent();
}

function fillRecent() {
  const hosts = recentHosts();
  $("recent-hosts").replaceChildren(...hosts.map((h) => element("option", {
    value: h.hostname, label: `${h.username}@${h.hostname}:${h.port}` })));
  if (hosts.length && !$("hostname").value) {
    $("hostname").value = hosts[0].hostname;
    $("port").value = hosts[0].port;
    $("username").value = hosts[0].username;
  }
}

$("hostname").addEventListener("change", () => {
  const known = recentHosts().find((h) => h.hostname === $("hostname").value);
  if (known) { $("port").value = known.port; $("username").value = known.username; }
});

async function connected(sid, target) {
  state.session = { sid, ...target };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
  remember(target);
  $("connect-form").hidden = true;
  $("challenge-form").hidden = true;
  $("connected").textContent = `Connected to ${target.username ? target.username + "@" : ""}`
    + `${target.hostname}${target.port !== 22 ? ":" + target.port : ""}.`;
  $("connected").append(" ", element("button", { type: "button", class: "quiet", id: "disconnect",
    onclick: disconnect }, "Disconnect"));
  $("connected").hidden = false;
  $("browse").hidden = false;
  const info = await call("GET", `/remotes/${sid}`);
  showPlacement(info.agent);
  const home = (info.agent.work_dir || "").replace(/\/\.cache\/framewire.*$/, "");
  await openFolder(state.path || home || "/");
}

async function disconnect() {
  if (state.session) await call("DELETE", `/remotes/${state.session.sid}`).catch(() => null);
  sessionStorage.removeItem(SESSION_KEY);
  state.session = null;
  $("connected").hidden = true;
  $("connect-form").hidden = false;
  for (const id of ["browse", "options", "progress", "result"]) $(id).hidden = true;
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

// -- browse -----------------------------------------------------------------

async function openFolder(path) {
  showError("browse-error", null);
  try {
    const listing = await call("POST", `/remotes/${state.session.sid}/browse${pathUrl(path)}`, {});
    state.path = listing.path;
    state.entries = listing.names.map((name, i) => ({
      name, size: listing.sizes[i], type: listing.types[i],
      path: (listing.path.endsWith("/") ? listing.path : listing.path + "/") + name,
    }));
    $("path").value = state.path;
    const images = state.entries.filter((e) => e.type === "f" && IMAGE.test(e.name));
    if (images.length && !images.some((e) => globRegExp($("pattern").value).test(e.name))) {
      $("pattern").value = "*" + images[0].name.slice(images[0].name.lastIndexOf("."));
    }
    renderCrumbs();
    renderListing();
  } catch (error) {
    showError("browse-error", error);
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

function selectedPaths() {
  return new Set(state.selection ? state.selection.files : []);
}

function renderListing() {
  const filter = $("filter").value.toLowerCase();
  const chosen = selectedPaths();
  const rows = [];
  if (state.path !== "/") {
    const parent = state.path.replace(/\/[^/]*\/?$/, "") || "/";
    rows.push(element("li", { class: "dir" }, element("button", { type: "button",
      onclick: () => openFolder(parent) }, "↑ Parent folder")));
  }
  for (const entry of state.entries) {
    if (filter && !entry.name.toLowerCase().includes(filter)) continue;
    if (entry.type === "d") {
      rows.push(element("li", { class: "dir" }, element("button", { type: "button",
        onclick: () => openFolder(entry.path) }, `📁 ${entry.name}`)));
    } else if (IMAGE.test(entry.name)) {
      const box = element("input", { type: "checkbox", "aria-label": `Select ${entry.name}` });
      box.checked = chosen.has(entry.path);
      box.addEventListener("change", () => toggle(entry.path, box.checked));
      rows.push(element("li", { class: "image" }, box,
        element("img", { src: imageUrl(entry.path, 96), alt: "", loading: "lazy",
                         width: "48", height: "36" }),
        element("span", { class: "name" }, entry.name),
        element("span", { class: "size" }, bytes(entry.size))));
    } else {
      rows.push(element("li", { class: "file" }, element("span", { class: "name" }, entry.name),
        element("span", { class: "size" }, bytes(entry.size))));
    }
  }
  $("listing").replaceChildren(...rows);
}

$("path-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const path = $("path").value.trim();
  if (path) openFolder(path.startsWith("/") ? path : "/" + path);
});
$("filter").addEventListener("input", renderListing);

function toggle(path, on) {
  const files = state.selection && state.selection.mode === "files"
    ? new Set(state.selection.files) : new Set();
  if (on) files.add(path); else files.delete(path);
  const sorted = [...files].sort(naturalCompare);
  setSelection(sorted.length ? { mode: "files", files: sorted } : null);
}

$("select-pattern").addEventListener("click", () => {
  const pattern = $("pattern").value.trim() || "*";
  const regex = globRegExp(pattern);
  const files = state.entries.filter((e) => e.type === "f" && regex.test(e.name))
    .map((e) => e.path).sort(naturalCompare);
  if (!files.length) {
    showError("browse-error", { message: `No file in ${state.path} matches ${pattern}.`,
                                hint: "Change the pattern, or open another folder." });
    return;
  }
  showError("browse-error", null);
  setSelection({ mode: "pattern", directory: state.path, pattern, files });
});
$("select-none").addEventListener("click", () => setSelection(null));

function setSelection(selection) {
  state.selection = selection;
  renderListing();
  const box = $("selection");
  if (!selection) { box.hidden = true; $("options").hidden = true; return; }
  const files = selection.files;
  const name = (p) => p.slice(p.lastIndexOf("/") + 1);
  $("selection-text").textContent = `${files.length} frame${files.length === 1 ? "" : "s"}`
    + (selection.mode === "pattern" ? ` matching ${selection.pattern}` : " selected")
    + `, from ${name(files[0])} to ${name(files[files.length - 1])}, in natural order.`;
  const samples = Math.min(8, files.length);
  const picks = [...new Set(Array.from({ length: samples },
    (_, i) => Math.round(i * (files.length - 1) / Math.max(1, samples - 1))))];
  $("strip").replaceChildren(...picks.map((i) => element("li", {},
    element("img", { src: imageUrl(files[i], 160), alt: name(files[i]), loading: "lazy" }),
    `#${i + 1}`)));
  box.hidden = false;
  $("options").hidden = false;
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

function videoRequest() {
  const s = state.selection;
  const body = {
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
  if ($("poster").checked) body.poster = true;
  placementRequest(body);
  return body;
}

$("video-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("video-error", null);
  $("make").disabled = true;
  try {
    const { sid: vsid } = await call("POST", `/remotes/${state.session.sid}/videos`, videoRequest());
    follow(state.session.sid, vsid);
    refreshJobs();
  } catch (error) {
    showError("video-error", error);
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
  const scheduler = [schedulerText(status), chunksText(status)].filter(Boolean).join(" · ");
  $("scheduler-text").textContent = scheduler;
  $("scheduler-text").hidden = !scheduler;
  $("progress").dataset.status = status.status;
}

// A job's status is its last word when it can no longer succeed or has: the
// server's ok and ready say so (no list of final states to keep in step here).
function isFinal(status) {
  return !status.ok || status.ready;
}

function follow(sid, vsid) {
  if (state.stream) state.stream.close();
  state.job = { sid, vsid };
  $("progress").hidden = false;
  $("result").hidden = true;
  $("cancel").hidden = false;
  showError("progress-error", null);
  showStatus({ progress: 0, message: "Queued." });
  const stream = new EventSource(`/remotes/${sid}/videos/${vsid}/events`);
  state.stream = stream;
  stream.addEventListener("status", (event) => {
    const status = JSON.parse(event.data);
    showStatus(status);
    if (isFinal(status)) {
      stream.close();
      finished(status);
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
    if (stream.readyState === EventSource.CLOSED) {
      showError("progress-error", { message: "Lost the progress stream.",
                                    hint: "Reload the page; the job goes on." });
    }
  };
}

function finished(status) {
  $("cancel").hidden = true;
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

// -- the list of videos ------------------------------------------------------

async function refreshJobs() {
  try {
    const storage = await call("GET", "/storage");
    const rows = storage.videos.slice(0, 50).map((job) => element("tr", {},
      element("td", {}, element("code", {}, job.sid.slice(0, 8))),
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

async function start() {
  if (!(await whoAmI())) return;
  fillRecent();
  refreshJobs();
  const saved = sessionStorage.getItem(SESSION_KEY);
  if (saved) {
    try {
      const session = JSON.parse(saved);
      await call("GET", `/remotes/${session.sid}`);
      await connected(session.sid, { hostname: session.hostname, port: session.port,
                                     username: session.username });
      return;
    } catch (error) {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }
  ($("hostname").value ? $("password") : $("hostname")).focus();
}

start();
