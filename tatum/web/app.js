// The jam page: one WebSocket to tatum serve, notes for the piano roll, PCM for the AudioWorklet.
const RATE = 48000;
const PAST_MS = 4000, FUTURE_MS = 2000, LOW = 21, HIGH = 108;

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, controls: {}, notes: [], playing: false,
  audio: null, node: null, position: -1, buffered: 0, lastFrame: -1,
};
// What a test (or a curious user in the console) can read.
window.tatum = { notes: 0, frames: 0, played: 0, acks: 0, errors: [], status: null, controls: null,
                 send: (m) => send(m) };

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function say(text) { $("status").textContent = text; }

// ------------------------------------------------------------------ connection
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => (typeof e.data === "string" ? onMessage(JSON.parse(e.data)) : onAudio(e.data));
  ws.onclose = () => { say("disconnected — reload to jam again"); $("play").disabled = true; $("stop").disabled = true; };
  state.ws = ws;
}

function onMessage(m) {
  switch (m.type) {
    case "hello":
      buildControls(m);
      say(`connected · session ${m.session}`);
      $("play").disabled = false;
      break;
    case "state":
      state.playing = m.playing;
      $("play").disabled = m.playing; $("stop").disabled = !m.playing;
      say(m.playing ? "playing" : "stopped");
      break;
    case "notes":
      for (const [onset, dur, pitch, velocity] of m.notes) state.notes.push({ onset, dur, pitch, velocity, epoch: m.epoch });
      window.tatum.notes += m.notes.length;
      break;
    case "cut":
      state.notes = state.notes.filter((n) => n.onset < m.at_ms);
      break;
    case "controls":
      window.tatum.acks += 1;
      window.tatum.controls = m.controls;
      break;
    case "status":
      window.tatum.status = m;
      $("meter").textContent = `${(m.ms / 1000).toFixed(1)} s · ${m.style} · ahead ${(m.ahead_ms / 1000).toFixed(1)} s` +
        ` · ${m.underruns} underruns` + (m.latency_ms != null ? ` · last change heard in ${m.latency_ms} ms` : "") +
        ` · audio buffer ${(state.buffered / RATE * 1000).toFixed(0)} ms`;
      break;
    case "error":
      window.tatum.errors.push(m);
      say(`⚠ ${m.message}`);
      break;
  }
}

function onAudio(buffer) {
  const first = Number(new DataView(buffer).getBigInt64(0, true));
  const data = new Float32Array(buffer, 8);
  window.tatum.frames += data.length / 2;
  if (state.node) state.node.port.postMessage({ first, data }, [data.buffer]);
}

// ------------------------------------------------------------------ audio
async function ensureAudio() {
  if (state.audio) { await state.audio.resume(); return; }
  const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
  await ctx.audioWorklet.addModule("/static/worklet.js");
  const node = new AudioWorkletNode(ctx, "tatum-player", { numberOfInputs: 0, outputChannelCount: [2] });
  node.port.onmessage = (e) => {
    state.position = e.data.played; state.buffered = e.data.buffered;
    window.tatum.played = e.data.played; window.tatum.worklet = e.data;
  };
  node.connect(ctx.destination);
  await ctx.resume();
  state.audio = ctx; state.node = node;
}

// ------------------------------------------------------------------ controls
function slider(id) {
  const input = $(id), out = input.parentElement.querySelector("output");
  const show = () => { if (out) out.textContent = input.value; };
  show();
  input.addEventListener("input", () => { show(); changed(); });
  return input;
}

function buildControls(hello) {
  state.controls = hello.controls;
  const styles = $("styles");
  for (const g of hello.genres) {
    const label = document.createElement("label");
    const w = (hello.controls.genre || {})[g] || 0;
    label.innerHTML = `${g} <input type="range" min="0" max="1" step="0.05" value="${w}" data-genre="${g}" id="genre-${g}"><output></output>`;
    styles.appendChild(label);
    slider(`genre-${g}`);
  }
  const artist = $("artist");
  for (const a of hello.artists) {
    const o = document.createElement("option");
    o.value = o.textContent = a;
    artist.appendChild(o);
  }
  const density = $("density");
  for (let b = 0; b < 8; b++) density.insertAdjacentHTML("beforeend", `<option value="${b}">${b}</option>`);
  $("temperature").value = hello.controls.temperature;
  $("top_k").value = hello.controls.top_k;
  $("guidance").value = hello.controls.guidance;
  for (const id of ["temperature", "top_k", "guidance"]) slider(id);
  artist.addEventListener("change", changed);
  density.addEventListener("change", changed);
}

let pending = null;
function changed() {              // at most one message per 120 ms while a slider moves
  if (pending) return;
  pending = setTimeout(() => { pending = null; send({ type: "controls", controls: readControls() }); }, 120);
}

function readControls() {
  const genre = {};
  for (const input of document.querySelectorAll("[data-genre]")) {
    const w = parseFloat(input.value);
    if (w > 0) genre[input.dataset.genre] = w;
  }
  const artist = $("artist").value;
  const density = $("density").value;
  return {
    genre: Object.keys(genre).length ? genre : { jazz: 1 },
    artist: artist || null,
    density: density === "any" ? null : parseInt(density, 10),
    temperature: parseFloat($("temperature").value),
    top_k: parseInt($("top_k").value, 10),
    guidance: parseFloat($("guidance").value),
  };
}

$("play").addEventListener("click", async () => {
  $("play").disabled = true;
  try { await ensureAudio(); } catch (e) { say(`no audio: ${e}`); }
  if (state.node) state.node.port.postMessage({ reset: true });
  state.notes = [];
  send({ type: "play" });
});
$("stop").addEventListener("click", () => send({ type: "stop" }));

// ------------------------------------------------------------------ piano roll
function draw() {
  const canvas = $("roll"), g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, keyH = h / (HIGH - LOW + 1);
  g.fillStyle = "#0c0d10"; g.fillRect(0, 0, w, h);
  g.fillStyle = "#15171c";
  for (let p = LOW; p <= HIGH; p++) if ([1, 3, 6, 8, 10].includes(p % 12)) g.fillRect(0, h - (p - LOW + 1) * keyH, w, keyH);
  const now = state.position >= 0 ? state.position / RATE * 1000 : 0;
  const x = (ms) => ((ms - now + PAST_MS) / (PAST_MS + FUTURE_MS)) * w;
  state.notes = state.notes.filter((n) => n.onset + n.dur > now - PAST_MS);
  for (const n of state.notes) {
    const past = n.onset <= now;
    g.fillStyle = past ? `rgba(224,168,79,${0.35 + n.velocity / 254})` : "rgba(120,160,220,0.55)";
    g.fillRect(x(n.onset), h - (n.pitch - LOW + 1) * keyH, Math.max(2, (n.dur / (PAST_MS + FUTURE_MS)) * w), keyH);
  }
  g.strokeStyle = "#e8e6e3"; g.beginPath(); g.moveTo(x(now), 0); g.lineTo(x(now), h); g.stroke();
  requestAnimationFrame(draw);
}

connect();
requestAnimationFrame(draw);
