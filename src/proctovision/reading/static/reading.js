// The reading page: a client of the JSON API. Every name and label is inserted as text, never as HTML.
"use strict";
const language = document.documentElement.dataset.language || "en";
const IDLE_LIMIT_MS = 60000;
let messages = {}, me = null, csrf = null, current = null, classes = [];
let shownAt = 0, hiddenMs = 0, hiddenSince = null, idleMs = 0, lastInput = Date.now();
let zoom = 1, panX = 0, panY = 0, camOn = false, adjudicated = 0;

const $ = (id) => document.getElementById(id);
const t = (key, values) => {
  let text = messages[key] || key;
  for (const [name, value] of Object.entries(values || {})) text = text.replace("{" + name + "}", String(value));
  return text;
};
const show = (id) => { for (const s of ["login", "home", "reader", "done"]) $(s).hidden = s !== id; };

async function api(method, path, body) {
  const headers = {"Accept": "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {method, headers, credentials: "same-origin",
                                      body: body === undefined ? undefined : JSON.stringify(body)});
  if (response.status === 401 && path !== "api/session") { me = null; show("login"); }
  return response;
}

function translateStatic() {
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.title = t("title") + " · ProctoVision";
}

async function start() {
  messages = await (await fetch("static/i18n/" + language + ".json")).json();
  translateStatic();
  const response = await api("GET", "api/session");
  if (response.ok) { await signedIn(await response.json()); } else { show("login"); }
}

async function signedIn(info) {
  me = info; csrf = info.csrf_token;
  $("who").textContent = info.name;
  $("logout").hidden = false;
  await home();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await api("POST", "api/session", {username: $("username").value, password: $("password").value});
  if (response.ok) { $("password").value = ""; await signedIn(await response.json()); }
  else { $("login-error").textContent = t(response.status === 429 ? "throttled" : "login_failed"); }
});

$("logout").addEventListener("click", async () => {
  await api("DELETE", "api/session");
  me = null; csrf = null; $("who").textContent = ""; $("logout").hidden = true; show("login");
});

async function home() {
  current = null; show("home");
  const list = $("arms"); list.replaceChildren();
  const work = await (await api("GET", "api/assignments")).json();
  classes = work.classes;
  for (const item of work.assignments) {
    const li = document.createElement("li");
    li.textContent = t(item.arm) + ": " + item.done + "/" + item.total + " ";
    if (item.finished) li.append(t("finished"));
    else if (!item.open) li.append(t("closed"));
    else {
      const button = document.createElement("button");
      button.textContent = t(item.done ? "resume" : "start");
      button.dataset.arm = item.arm;
      button.className = "start-arm";
      button.addEventListener("click", () => readArm(item.arm));
      li.append(button);
    }
    list.append(li);
  }
  if (!work.assignments.length && me.role === "reader") list.append(t("nothing"));
  $("work").hidden = me.role !== "reader";
  $("admin").hidden = me.role !== "admin";
  $("adjudicator").hidden = me.role !== "adjudicator";
  if (me.role === "admin") await adminPanel();
}

async function adminPanel() {
  const info = await (await api("GET", "api/admin/progress")).json();
  const body = $("progress-table").querySelector("tbody"); body.replaceChildren();
  for (const line of info.progress) {
    const row = document.createElement("tr");
    const median = line.median_reading_s === null ? "-" : t("seconds", {n: line.median_reading_s});
    const last = line.since_last_answer_s === null ? "-" : t("ago", {time: duration(line.since_last_answer_s)});
    for (const text of [line.reader, t(line.arm), line.done + "/" + line.total, median, last]) {
      const cell = document.createElement("td"); cell.textContent = text; row.append(cell);
    }
    body.append(row);
  }
  const list = $("agreement"); list.replaceChildren();
  for (const [condition, block] of Object.entries(info.agreement.conditions || {})) {
    const li = document.createElement("li");
    const panel = block.fleiss;
    li.textContent = t(condition) + ": " + t("kappa") + " " + (panel ? kappaText(panel) + ", " +
      t("kappa_read_by_all", {n: panel.n, readers: panel.n_readers}) : "-");
    const pairs = document.createElement("ul");
    for (const pair of block.pairs) {
      const line = document.createElement("li");
      line.textContent = pair.a + " / " + pair.b + ": " + t("kappa_pair") + " " + kappaText(pair);
      pairs.append(line);
    }
    li.append(pairs);
    list.append(li);
  }
}

function kappaText(entry) {
  if (entry.kappa === null) return "- (n = " + entry.n + ")";
  const [low, high] = entry.ci95 || [null, null];
  const interval = low === null || high === null ? "" : " (" + t("ci95") + " " + low.toFixed(2) + " " + t("to") +
    " " + high.toFixed(2) + ")";
  return entry.kappa.toFixed(3) + interval + ", n = " + entry.n;
}

function duration(seconds) {
  if (seconds < 120) return t("seconds", {n: Math.round(seconds)});
  if (seconds < 7200) return t("minutes", {n: Math.round(seconds / 60)});
  return t("hours", {n: Math.round(seconds / 3600)});
}

$("export").addEventListener("click", async () => {
  const response = await api("POST", "api/admin/export");
  if (!response.ok) { $("export-status").textContent = t("error"); return; }
  const name = (response.headers.get("content-disposition") || "").split("filename=").pop().replace(/"/g, "");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob()); link.download = name || "export.csv";
  document.body.append(link); link.click(); link.remove();
  $("export-status").textContent = t("exported") + " " + name;
});

$("adjudicate").addEventListener("click", () => { adjudicated = 0; readArm(null); });
$("back").addEventListener("click", () => home());

async function readArm(arm) {
  current = {arm};
  await nextCase();
}

async function nextCase() {
  const path = current.arm ? "api/assignments/" + encodeURIComponent(current.arm) + "/next" : "api/adjudication/next";
  const response = await api("GET", path);
  if (response.status === 204) { show("done"); current = null; return; }
  if (!response.ok) { $("reader-error").textContent = t("error"); return; }
  const info = await response.json();
  // A new URL per showing: the browser must fetch the image again (the server times the showing from serving it).
  current = {arm: current.arm, ...info, ready: false, source: info.image + "?showing=" + Date.now()};
  show("reader");
  $("reader-error").textContent = "";
  if (info.position) {
    $("position").textContent = t("case_of", info);
    $("progress-fill").style.width = (100 * (info.position - 1) / info.total) + "%";
  } else {  // adjudication: how many disagreements are left
    $("position").textContent = t("remaining", {n: info.remaining});
    $("progress-fill").style.width = (100 * adjudicated / (adjudicated + info.remaining)) + "%";
  }
  camOn = false; $("cam-image").hidden = true; $("cam-image").removeAttribute("src");
  const model = info.model;
  $("model").hidden = !model;
  $("model-values").replaceChildren();
  if (model) {
    for (const [name, value] of Object.entries(model.probabilities || {})) {
      const li = document.createElement("li"); li.textContent = t(name) + ": " + (100 * value).toFixed(1) + "%";
      $("model-values").append(li);
    }
    $("cam-controls").hidden = !model.cam; $("cam-toggle").textContent = t("show_cam");
  }
  $("experts").hidden = !info.labels;
  $("expert-labels").replaceChildren();
  for (const entry of info.labels || []) {
    const li = document.createElement("li"); li.textContent = t("expert", {n: entry.expert}) + ": " + t(entry.label);
    $("expert-labels").append(li);
  }
  $("confidence-label").hidden = !current.arm;
  $("confidence").value = 50; $("confidence-value").textContent = "50";
  const box = $("classes"); box.replaceChildren();
  info.classes.forEach((name, index) => {
    const button = document.createElement("button");
    button.textContent = (index + 1) + " · " + t(name);
    button.dataset.label = name;
    button.disabled = true;  // no answer before the image is drawn
    button.addEventListener("click", () => submit(name));
    box.append(button);
  });
  setWindows(info.windows || []);
  const showing = current, image = $("case-image");
  image.onload = () => {
    image.onload = null;
    fit();
    requestAnimationFrame(() => { if (current === showing) drawn(); });
  };
  image.onerror = () => { image.onerror = null; if (current === showing) $("reader-error").textContent = t("error"); };
  image.src = current.source;
}

// The image is on screen: answers count from now (the server times from serving the image).
function drawn() {
  current.ready = true;
  for (const button of $("classes").querySelectorAll("button")) button.disabled = false;
  shownAt = Date.now(); hiddenMs = 0; idleMs = 0; lastInput = Date.now(); hiddenSince = document.hidden ? Date.now() : null;
}

async function submit(label) {
  if (!current || current.busy || !current.ready) return;
  current.busy = true;
  noteInput();
  const confidence = Number($("confidence").value);
  const hidden = hiddenMs + (hiddenSince ? Date.now() - hiddenSince : 0);
  const response = current.arm
    ? await api("POST", "api/cases/" + encodeURIComponent(current.case) + "/answers",
                {arm: current.arm, label, confidence, hidden_s: hidden / 1000, idle_s: idleMs / 1000})
    : await api("POST", "api/adjudication/" + encodeURIComponent(current.case), {label});
  if (response.status === 201 && !current.arm) adjudicated += 1;
  if (response.status === 201 || response.status === 409) { await nextCase(); return; }
  current.busy = false;
  $("reader-error").textContent = t("error");
}

function toggleCam() {
  if (!current || !current.model || !current.model.cam) return;
  camOn = !camOn;
  const cam = $("cam-image");
  if (camOn && !cam.getAttribute("src")) { cam.onload = () => place(); cam.src = current.model.cam; }
  cam.hidden = !camOn;
  $("cam-toggle").textContent = t(camOn ? "hide_cam" : "show_cam");
  place();
}
$("cam-toggle").addEventListener("click", toggleCam);
function setOpacity() {
  $("cam-image").style.opacity = String(Number($("cam-opacity").value) / 100);
  $("cam-opacity-value").textContent = $("cam-opacity").value + "%";
}
$("cam-opacity").addEventListener("input", setOpacity);

// Zoom and pan. The CAM covers exactly the region of the image it was computed on (the server makes it so), at
// the image's aspect ratio: it is laid over the image's box with the same transform, so zoom and pan move both.
function fit() {
  const view = $("viewport"), image = $("case-image");
  zoom = Math.min(view.clientWidth / image.naturalWidth, view.clientHeight / image.naturalHeight) || 1;
  panX = (view.clientWidth - image.naturalWidth * zoom) / 2; panY = (view.clientHeight - image.naturalHeight * zoom) / 2;
  place();
}
function place() {
  const image = $("case-image"), cam = $("cam-image");
  image.style.transform = `translate(${panX}px, ${panY}px) scale(${zoom})`;
  cam.style.width = image.naturalWidth + "px"; cam.style.height = image.naturalHeight + "px";
  cam.style.transform = image.style.transform;
}
function zoomBy(factor, x, y) {  // the point (x, y) of the viewport stays put; the centre by default
  const view = $("viewport");
  const cx = x === undefined ? view.clientWidth / 2 : x, cy = y === undefined ? view.clientHeight / 2 : y;
  panX = cx - (cx - panX) * factor; panY = cy - (cy - panY) * factor; zoom *= factor;
  place();
}
$("zoom-in").addEventListener("click", () => zoomBy(1.25));
$("zoom-out").addEventListener("click", () => zoomBy(0.8));
$("zoom-fit").addEventListener("click", fit);
$("zoom-1").addEventListener("click", () => zoomBy(1 / zoom));
$("viewport").addEventListener("wheel", (event) => {
  event.preventDefault();
  const box = $("viewport").getBoundingClientRect();
  zoomBy(event.deltaY < 0 ? 1.1 : 0.9, event.clientX - box.left, event.clientY - box.top);
});
let drag = null;
$("viewport").addEventListener("pointerdown", (event) => { drag = {x: event.clientX - panX, y: event.clientY - panY}; });
window.addEventListener("pointerup", () => { drag = null; });
window.addEventListener("pointermove", (event) => { if (drag) { panX = event.clientX - drag.x; panY = event.clientY - drag.y; place(); } });
// window presets: the DICOM windows the server rendered (full range, contrast), and display filters for any image
// (the high-contrast filter is meant for MRI, so only DICOM cases offer it)
const FILTERS = {none: "none", contrast: "contrast(1.8) brightness(0.9)", bright: "brightness(1.5)", invert: "invert(1)"};
function setWindows(names) {
  const select = $("window");
  for (const option of [...select.options]) if (option.dataset.server) option.remove();
  for (const name of names) {
    const option = document.createElement("option");
    option.value = "dicom:" + name; option.dataset.server = "1"; option.textContent = t("window_dicom_" + name);
    select.append(option);
  }
  const contrast = select.querySelector('option[value="contrast"]');
  contrast.hidden = contrast.disabled = !names.length;
  select.value = "none"; $("case-image").style.filter = "none";
}
$("window").addEventListener("change", () => {
  const value = $("window").value, image = $("case-image");
  if (value.startsWith("dicom:")) {
    image.style.filter = "none";
    image.src = current.source + "&window=" + encodeURIComponent(value.slice(6));
  } else {
    if (image.getAttribute("src") !== current.source) image.src = current.source;
    image.style.filter = FILTERS[value];
  }
});
$("confidence").addEventListener("input", () => { $("confidence-value").textContent = $("confidence").value; });

// time that is not reading: the tab hidden, or no input for more than a minute
function noteInput() {
  const now = Date.now();
  if (!document.hidden && now - lastInput > IDLE_LIMIT_MS) idleMs += now - lastInput;
  lastInput = now;
}
for (const kind of ["pointermove", "pointerdown", "wheel", "keydown"]) window.addEventListener(kind, noteInput, true);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) { hiddenSince = Date.now(); }
  else if (hiddenSince) { hiddenMs += Date.now() - hiddenSince; hiddenSince = null; lastInput = Date.now(); }
});

window.addEventListener("keydown", (event) => {
  if ($("reader").hidden || event.target.tagName === "INPUT" && event.target.type !== "range") return;
  const index = Number(event.key) - 1;
  if (current && Number.isInteger(index) && index >= 0 && index < (current.classes || []).length) {
    event.preventDefault(); submit(current.classes[index]);
  } else if (event.key === "c" || event.key === "C") { event.preventDefault(); toggleCam(); }
  else if (event.key === "+" || event.key === "=") { event.preventDefault(); zoomBy(1.25); }
  else if (event.key === "-") { event.preventDefault(); zoomBy(0.8); }
  else if (event.key === "ArrowUp" || event.key === "ArrowRight") { $("confidence").stepUp(); $("confidence-value").textContent = $("confidence").value; }
  else if (event.key === "ArrowDown" || event.key === "ArrowLeft") { $("confidence").stepDown(); $("confidence-value").textContent = $("confidence").value; }
});

start();
