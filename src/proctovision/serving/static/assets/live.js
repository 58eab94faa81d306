// The live page. The camera's own picture is never put on screen: each screen frame is drawn into the canvas,
// black everywhere but the content area of the latest good answer. Before the first answer, after a failure, or
// while the server finds no content area, the canvas stays black, so burned-in patient text is never shown.
// Stop ends the procedure: the page sends "end", and where the server records answers (serve --monitor) the
// feedback panel (feedback.js) asks once about the procedure's answer.
const T = JSON.parse(document.getElementById("strings").textContent);
const CLASSES = JSON.parse(document.getElementById("classes").textContent);
const label = name => CLASSES[name] || name;
const byId = id => document.getElementById(id);
const video = byId("video"), view = byId("view"), select = byId("camera"), errorLine = byId("error");
const grab = document.createElement("canvas");
let socket = null, stream = null, busy = false, sentAt = 0, frames = 0, dropped = 0;
const masked = document.createElement("canvas");
let box = null, mask = null, heatmap = null, heatmapBox = [0, 0, 1, 1];

fetch("health").then(r => r.json()).then(h => { if (h.token_required) byId("token-row").classList.add("inline"); })
  .catch(() => {});

async function listCameras() {
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter(d => d.kind === "videoinput");
  select.innerHTML = "";
  devices.forEach((d, i) => select.add(new Option(d.label || T.camera + " " + (i + 1), d.deviceId)));
}

function forget() { box = null; mask = null; heatmap = null; }  // back to black until the next good answer

async function start() {
  errorLine.textContent = ""; forget();
  if (window.ProctoFeedback) window.ProctoFeedback.dismiss();
  try {
    const constraints = select.value ? { deviceId: { exact: select.value } } : true;
    stream = await navigator.mediaDevices.getUserMedia({ video: constraints, audio: false });
  } catch (failure) { errorLine.textContent = T.no_camera + " " + failure.name; return; }
  video.srcObject = stream;
  await listCameras();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = byId("token").value;
  socket = new WebSocket(scheme + "//" + location.host + location.pathname.replace(/live$/, "") + "ws/live"
                         + (token ? "?token=" + encodeURIComponent(token) : ""));
  socket.binaryType = "arraybuffer";
  const own = socket;
  socket.onmessage = event => {
    const message = JSON.parse(event.data);
    if ("procedure" in message) {
      if (message.error) errorLine.textContent = T.not_recorded;
      ended(message.procedure); own.close(1000); return;
    }
    if (own !== socket) return;  // an answer to a frame sent before Stop
    busy = false; show(message);
  };
  socket.onclose = event => {
    if (own !== socket) return;
    forget();
    if (event.code !== 1000 && event.code !== 1005) errorLine.textContent = T.closed + " " + (event.reason || event.code);
  };
  socket.onerror = forget;
  socket.onopen = () => next(tick);
  byId("start").disabled = true; byId("stop").disabled = false;
}

function stop() {
  forget();
  const ending = socket; socket = null; busy = false;
  if (ending && ending.readyState === WebSocket.OPEN) ending.send("end");  // the server answers with the procedure
  else if (ending) ending.close(1000);
  if (stream) stream.getTracks().forEach(t => t.stop()); stream = null;
  byId("start").disabled = false; byId("stop").disabled = true;
  // the last frame's label and warning go with the stream; the procedure's answer is the feedback panel's
  byId("shown").textContent = "-"; byId("shown").dataset.class = ""; byId("probability").textContent = "";
  byId("live-label").classList.remove("withheld"); byId("warning").hidden = true;
}

function ended(procedure) {
  if (window.ProctoFeedback) window.ProctoFeedback.ask(procedure, byId("live-label"));
}

function tick() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (video.readyState >= 2 && video.videoWidth) {
    if (busy) { dropped++; }
    else {
      const scale = Math.min(1, 640 / video.videoWidth);
      grab.width = Math.round(video.videoWidth * scale); grab.height = Math.round(video.videoHeight * scale);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      busy = true; sentAt = performance.now();
      grab.toBlob(blob => blob.arrayBuffer().then(buffer => socket && socket.send(buffer)), "image/jpeg", 0.85);
    }
  }
  byId("dropped").textContent = dropped;
  next(tick);
}

// One call per new camera frame where the browser can say so, so "dropped" counts camera frames.
function next(callback) {
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => callback());
  else requestAnimationFrame(callback);
}

function warningOf(answer) {
  if (answer.warning && !answer.quality) return T.no_area;
  const quality = answer.quality || {};
  const flags = ["too_dark", "overexposed", "blurred"].filter(name => quality[name]).map(name => T[name]);
  const parts = [];
  if (answer.in_distribution === false) parts.push(T.ood + ".");
  if (flags.length) parts.push(T.quality + ": " + flags.join(", ") + "; " + T.cannot_judge);
  if (!parts.length && answer.content_box === null && answer.withheld) parts.push(T.no_area);
  return parts.join(" ");
}

function show(answer) {
  if (answer.error) { errorLine.textContent = T.unreadable; forget(); return; }
  errorLine.textContent = "";
  frames++;
  const shown = byId("shown"), probability = byId("probability"), warning = byId("warning");
  byId("live-label").classList.toggle("withheld", answer.withheld);
  if (answer.withheld) {
    shown.textContent = T.withheld; shown.dataset.class = ""; probability.textContent = "";
  } else if (answer.shown === null) {
    shown.textContent = T.near; shown.dataset.class = ""; probability.textContent = "";
  } else {
    shown.textContent = label(answer.shown); shown.dataset.class = answer.shown;
    probability.textContent = answer.smoothed_probability.toFixed(2);
  }
  const text = answer.withheld ? warningOf(answer) : "";
  warning.textContent = text; warning.hidden = !text;
  byId("frames").textContent = frames;
  byId("latency").textContent = Math.round(performance.now() - sentAt);
  if (answer.content_mask_png_base64) {
    const image = new Image();
    image.onload = () => { mask = image; };
    image.src = "data:image/png;base64," + answer.content_mask_png_base64;
  }
  box = answer.content_box;
  if (!box) mask = null;
  if (answer.withheld || answer.shown === null) heatmap = null;
  if (answer.heatmap_png_base64) {
    const image = new Image(); const place = answer.heatmap_box;
    image.onload = () => { heatmap = image; heatmapBox = place; };
    image.src = "data:image/png;base64," + answer.heatmap_png_base64;
  }
}

// Every screen frame: black, then the camera through the content area's mask only, the heatmap inside it.
function draw() {
  const w = video.videoWidth || 640, h = video.videoHeight || 480;
  if (view.width !== w || view.height !== h) { view.width = w; view.height = h; }
  const g = view.getContext("2d");
  g.fillStyle = "#000"; g.fillRect(0, 0, w, h);
  if (box && mask && stream && socket && socket.readyState === WebSocket.OPEN && video.readyState >= 2) {
    const [l, t, r, b] = [box[0] * w, box[1] * h, box[2] * w, box[3] * h];
    if (masked.width !== w || masked.height !== h) { masked.width = w; masked.height = h; }
    const m = masked.getContext("2d");
    m.globalCompositeOperation = "source-over"; m.globalAlpha = 1; m.clearRect(0, 0, w, h);
    m.save(); m.beginPath(); m.rect(l, t, r - l, b - t); m.clip();
    m.drawImage(video, 0, 0, w, h);
    if (heatmap) {
      const [hl, ht, hr, hb] = [heatmapBox[0] * w, heatmapBox[1] * h, heatmapBox[2] * w, heatmapBox[3] * h];
      m.globalAlpha = 0.45; m.drawImage(heatmap, hl, ht, hr - hl, hb - ht); m.globalAlpha = 1;
    }
    m.globalCompositeOperation = "destination-in"; m.drawImage(mask, l, t, r - l, b - t);
    m.restore();
    g.drawImage(masked, 0, 0);
  }
  requestAnimationFrame(draw);
}

byId("start").addEventListener("click", start);
byId("stop").addEventListener("click", stop);
navigator.mediaDevices.enumerateDevices().then(listCameras).catch(() => {});
requestAnimationFrame(draw);
