// The clinician's page: send one image to /predict and show the answer; an answer the guard withholds shows the
// warning only, until "show anyway" (audited by the server) brings the class, the numbers and the heatmap.
const T = JSON.parse(document.getElementById("strings").textContent);
const CLASSES = JSON.parse(document.getElementById("classes").textContent);
const SIGNED_IN = document.body.dataset.signedIn === "yes";
const label = name => CLASSES[name] || name;
const byId = id => document.getElementById(id);
const drop = byId("drop"), input = byId("file");
let current = null;

fetch("health").then(r => r.json()).then(h => { if (h.token_required) byId("token-row").classList.add("shown"); })
  .catch(() => {});
drop.addEventListener("click", () => input.click());
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); send(e.dataTransfer.files[0]); });
input.addEventListener("change", () => send(input.files[0]));
byId("show-anyway").addEventListener("click", showAnyway);

function csrfToken() {  // the signed-in session's token (serve --auth), sent with every POST
  const match = document.cookie.match(/(?:^|;\s*)csrf_token=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function headers() {
  const result = {}; const token = byId("token").value;
  if (token) result["Authorization"] = "Bearer " + token;
  const csrf = csrfToken(); if (csrf) result["X-CSRF-Token"] = csrf;
  return result;
}

// A session that ended elsewhere: back to the sign-in form, in the page's language.
function signInAgain() {
  const query = new URLSearchParams();
  const lang = new URLSearchParams(location.search).get("lang");
  if (lang) query.set("lang", lang);
  query.set("session", "ended");
  location.assign(location.pathname + "?" + query.toString());
}

// Every refusal in the page's language (the server's sentences are English, for logs and scripts).
function messageFor(status) { return T[String(status)] || T.refused.replaceAll("{status}", status); }

async function post(url, body) {
  const status = byId("status"), error = byId("error");
  let response;
  try { response = await fetch(url, { method: "POST", body, headers: headers() }); }
  catch (failure) { status.textContent = ""; error.textContent = T.failed.replaceAll("{reason}", failure); return null; }
  if (response.status === 401 && SIGNED_IN) { signInAgain(); return null; }
  if (!response.ok) {
    let known = messageFor(response.status);
    if (response.status === 413) {  // over the pixel budget (named by the answer) or over the upload limit
      try { if ((await response.json()).max_pixel_values) known = T.pixels; } catch (failure) { /* not JSON */ }
    }
    status.textContent = ""; error.textContent = known; return null;
  }
  try { return await response.json(); }
  catch (failure) { status.textContent = ""; error.textContent = messageFor(response.status); return null; }
}

async function send(file) {
  if (!file) return;
  const status = byId("status");
  status.textContent = T.reading.replaceAll("{file}", file.name); byId("error").textContent = "";
  const body = new FormData(); body.append("file", file);
  const result = await post("predict?overlay_width=" + overlayWidth(), body);
  if (result) { show(result); status.textContent = T.done; }
}

async function showAnyway() {
  if (!current || !current.answer_id) return;
  const result = await post("answers/" + encodeURIComponent(current.answer_id) + "/shown", null);
  if (result) show(result);
}

// The overlay is drawn for the size it is shown at, in device pixels (320 CSS px, twice that on most phones).
function overlayWidth() {
  const shown = Math.min(320, byId("overlay").parentElement.clientWidth || 320);
  return Math.max(64, Math.min(1280, Math.round(shown * (window.devicePixelRatio || 1))));
}

function show(result) {
  current = result;
  if ((result.quality || {}).content_area === false) {  // a dark frame: the sentence, no class, nothing to show
    const warning = byId("warning"); warning.textContent = T.no_content; warning.hidden = false;
    byId("show-anyway").hidden = true; byId("details").hidden = true;
    byId("predicted").textContent = T.not_shown; byId("predicted").dataset.class = "";
    byId("probabilities").innerHTML = ""; byId("threshold").textContent = ""; byId("heatmap-note").textContent = "";
    byId("overlay").hidden = true;
    return;
  }
  const quality = result.quality || {};
  const flags = ["too_dark", "overexposed", "blurred"].filter(name => quality[name]).map(name => T[name]);
  const parts = [];
  if (result.in_distribution === false) parts.push(T.ood + ". " + T.unreliable);
  if (flags.length) parts.push(T.quality + ": " + flags.join(", ") + "; " + T.cannot_judge);
  if (result.shown_anyway) parts.push(T.shown_anyway);
  const warning = byId("warning");
  warning.textContent = parts.join(" "); warning.hidden = parts.length === 0;
  const withheld = result.withheld === true;
  byId("show-anyway").hidden = !withheld;
  byId("details").hidden = withheld;
  const predicted = byId("predicted");
  predicted.textContent = withheld ? T.not_shown : label(result.predicted);
  predicted.dataset.class = withheld ? "" : result.predicted;
  const table = byId("probabilities"); table.innerHTML = "";
  const overlay = byId("overlay");
  overlay.hidden = true; overlay.removeAttribute("src");
  byId("heatmap-note").textContent = "";
  byId("threshold").textContent = "";
  if (withheld) return;
  for (const [name, p] of Object.entries(result.probabilities)) {
    const row = table.insertRow();
    row.insertCell().textContent = label(name);
    const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = Math.round(p * 200) + "px";
    row.insertCell().appendChild(bar);
    const value = row.insertCell(); value.textContent = p.toFixed(3); value.className = "probability";
    value.dataset.class = name;
  }
  const names = Object.keys(result.probabilities);
  byId("threshold").textContent = result.threshold === null ? T.argmax
    : T.threshold.replaceAll("{positive}", label(names[1])).replaceAll("{value}", result.threshold.toFixed(3));
  if (result.heatmap_png_base64) {
    overlay.src = "data:image/png;base64," + result.heatmap_png_base64; overlay.hidden = false;
  }
  byId("heatmap-note").textContent = result.heatmap_note && !result.heatmap_png_base64 ? T.no_heatmap : "";
}

const signOut = byId("sign-out");
if (signOut) signOut.addEventListener("click", async () => {
  await fetch("auth/session", { method: "DELETE", headers: { "X-CSRF-Token": csrfToken() } });
  location.reload();
});
