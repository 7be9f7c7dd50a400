// The playground page's script (bundled by hack/playground.sh into /playground.js): the
// editor, the language list from /api/languages, runs over the native API with live output
// over SSE or the WebSocket, the interactive console, and the test-case panel.
import { createEditor } from "./editor.js";
import GENERATED from "./samples.gen.json";

const $ = (id) => document.getElementById(id);

// A sample per language: these few by hand; every other language the program its image is
// tested with (sandbox-images/langs/<name>/tests/echo.* or hello.*, gathered at build time).
const SAMPLES = Object.assign({}, GENERATED, {
  python: 'import sys\nname = sys.stdin.readline().strip() or "world"\nprint(f"Hello, {name}!")\nprint(sum(i * i for i in range(10)))\n',
  javascript: 'const input = require("fs").readFileSync(0, "utf8").trim() || "world";\nconsole.log(`Hello, ${input}!`);\nconsole.log([1, 2, 3].map(x => x * 2).join(","));\n',
  bash: 'read -r name\necho "Hello, ${name:-world}!"\nfor i in 1 2 3; do echo "line $i"; done\n',
});
// What was in the editor for each language this page has shown (switching back restores it).
const drafts = {};
let current = null;

let languages = [];
let stream = null;
let running = false;
// Live output seen for the current run: the status views in between carry none, so they do
// not overwrite it; the terminal status (the whole output) does.
let liveSeen = false;
const decoders = {};

const editor = createEditor($("code"), { onRun: () => run() });
window.rceEditor = editor.view;
window.rce = editor;

function log(msg) { $("log").textContent += msg + "\n"; }
function apiKey() { return $("key").value.trim(); }
function headers() {
  const h = { "content-type": "application/json" };
  const k = apiKey();
  if (k) h.authorization = "Bearer " + k;
  return h;
}
function setPhase(p) {
  const order = ["Pending", "Processing", "Completed"];
  const idx = order.indexOf(p === "Failed" ? "Completed" : p);
  document.querySelectorAll(".phase").forEach((el) => {
    const i = order.indexOf(el.dataset.p);
    el.className = "phase" + (i < idx ? " done" : "") + (i === idx ? " now" : "");
    if (el.dataset.p === "Completed") el.textContent = p === "Failed" ? "Failed" : "Completed";
  });
}
function verdictClass(verdict) {
  return verdict === "Accepted" ? "Accepted"
    : ["Pending", "Processing", "Skipped"].includes(verdict) ? "pending"
    : ["TimeLimitExceeded", "MemoryLimitExceeded", "OutputLimitExceeded"].includes(verdict) ? "warn" : "bad";
}
const ms = (x) => (x != null ? x + " ms" : "—");
const mib = (kib) => (kib != null ? (kib / 1024).toFixed(1) + " MiB" : "—");

function show(v) {
  setPhase(v.status);
  $("jobid").textContent = v.id;
  const verdict = v.verdict || (v.status === "Failed" ? "Failed" : v.status);
  $("verdict").className = "verdict " + verdictClass(v.verdict ? verdict : "Pending");
  $("verdict").textContent = verdict + (v.message && v.verdict !== "Accepted" ? " — " + v.message : "");
  $("time").textContent = ms(v.time);
  $("wall").textContent = ms(v.wallTime);
  $("memory").textContent = mib(v.memory);
  $("exit").textContent = v.signal ? v.signal : v.exitCode != null ? String(v.exitCode) : "—";
  if (Array.isArray(v.tests)) showTests(v);
  if (liveSeen && !finished(v)) return;
  $("stdout").textContent = (v.stdout ?? "") + (v.stdoutTruncated ? "\n[truncated]" : "");
  $("stderr").textContent = (v.compileOutput ?? "") + (v.stderr ?? "") + (v.stderrTruncated ? "\n[truncated]" : "");
}

// ------------------------------------------------------------------ test cases
function addCase(c = {}) {
  const row = document.createElement("div");
  row.className = "case-input";
  row.innerHTML =
    '<div class="row"><input class="case-name" placeholder="name" aria-label="case name">' +
    '<button type="button" class="case-remove secondary" title="remove this case">✕</button></div>' +
    '<div class="case-io"><textarea class="case-stdin" spellcheck="false" placeholder="stdin" aria-label="case stdin"></textarea>' +
    '<textarea class="case-expected" spellcheck="false" placeholder="expected output" aria-label="case expected output"></textarea></div>';
  const n = $("cases").children.length + 1;
  row.querySelector(".case-name").value = c.name ?? "case " + n;
  row.querySelector(".case-stdin").value = c.stdin ?? "";
  row.querySelector(".case-expected").value = c.expectedOutput ?? "";
  row.querySelector(".case-remove").addEventListener("click", () => { row.remove(); casesChanged(); });
  $("cases").appendChild(row);
  casesChanged();
  return row;
}
function cases() {
  return [...$("cases").querySelectorAll(".case-input")].map((row, i) => ({
    name: row.querySelector(".case-name").value.trim() || "case " + (i + 1),
    stdin: row.querySelector(".case-stdin").value,
    expectedOutput: row.querySelector(".case-expected").value,
  }));
}
function casesChanged() {
  const n = $("cases").children.length;
  $("case-count").textContent = n ? n + (n === 1 ? " case" : " cases") : "none: a plain run with the stdin above";
  $("stdin-box").classList.toggle("dim", n > 0);
}
const excerpt = (text) => (text.length > 400 ? text.slice(0, 400) + "…" : text);
function showTests(v) {
  $("results").hidden = false;
  const body = $("tests").querySelector("tbody");
  body.innerHTML = "";
  for (const t of v.tests) {
    const tr = document.createElement("tr");
    tr.className = "case";
    const verdict = t.skipped ? "Skipped" : t.verdict || "Pending";
    const cells = {
      name: t.name,
      verdict,
      time: t.skipped ? "—" : ms(t.time),
      memory: t.skipped ? "—" : mib(t.memory),
      stdout: (t.stdout ?? "") + (t.stdoutTruncated ? " [truncated]" : ""),
      stderr: (t.stderr ?? "") + (t.stderrTruncated ? " [truncated]" : ""),
    };
    for (const [k, text] of Object.entries(cells)) {
      const td = document.createElement("td");
      td.className = k;
      if (k === "stdout" || k === "stderr") {
        const pre = document.createElement("pre");
        pre.textContent = excerpt(text);
        if (text) td.appendChild(pre);
      } else td.textContent = text;
      if (k === "verdict") {
        td.classList.add(verdictClass(verdict));
        if (t.message) td.title = t.message;
      }
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const total = v.total ?? v.tests.length;
  const passed = v.passed ?? v.tests.filter((t) => t.verdict === "Accepted" && !t.skipped).length;
  $("passed").textContent = passed + "/" + total;
  $("passed").className = "verdict " + (passed === total ? "Accepted" : "bad");
}

// ------------------------------------------------------------------ live output
// A live chunk: {stream, text} or {stream, base64} (bytes that are not UTF-8).
function output(o) {
  const el = $(o.stream === "stderr" ? "stderr" : "stdout");
  if (!liveSeen) { $("stdout").textContent = ""; $("stderr").textContent = ""; liveSeen = true; }
  if (o.text != null) { el.textContent += o.text; return; }
  const bytes = Uint8Array.from(atob(o.base64), (c) => c.charCodeAt(0));
  decoders[o.stream] = decoders[o.stream] || new TextDecoder("utf-8");
  el.textContent += decoders[o.stream].decode(bytes, { stream: true });
}
function stage(s) { log("stage: " + s.stage); }
function sendInput(msg) {
  if (stream instanceof WebSocket && stream.readyState === WebSocket.OPEN) stream.send(JSON.stringify(msg));
  else log("not connected: the program has ended");
}
function sendLine() {
  const line = $("typed").value;
  $("typed").value = "";
  log("stdin: " + line);
  sendInput({ type: "stdin", text: line + "\n" });
}
function finished(v) { return v.status === "Completed" || v.status === "Failed"; }
function done() {
  running = false;
  $("run").disabled = false;
  $("console").hidden = true;
  if (stream) { try { stream.close(); } catch (_) {} stream = null; }
}

function follow(id) {
  const key = apiKey();
  const q = key ? "?api_key=" + encodeURIComponent(key) : "";
  if ($("transport").value === "ws" || $("interactive").checked) {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/executions/" + id + "/ws" + q;
    const ws = new WebSocket(url);
    stream = ws;
    if ($("interactive").checked) { $("console").hidden = false; $("typed").focus(); }
    ws.onmessage = (e) => {
      const v = JSON.parse(e.data);
      if (v.type === "output") return output(v);
      if (v.type === "stage") return stage(v);
      if (v.type === "error") return log("error: " + v.message);
      log("ws: " + v.status); show(v); if (finished(v)) done();
    };
    ws.onerror = () => { log("websocket error"); done(); };
    ws.onclose = () => { running = false; $("run").disabled = false; };
  } else {
    const es = new EventSource("/api/executions/" + id + "/events" + q);
    stream = es;
    es.addEventListener("status", (e) => { const v = JSON.parse(e.data); log("sse: " + v.status); show(v); if (finished(v)) done(); });
    es.addEventListener("output", (e) => output(JSON.parse(e.data)));
    es.addEventListener("stage", (e) => stage(JSON.parse(e.data)));
    es.addEventListener("end", () => done());
    es.onerror = () => { log("event stream closed"); done(); };
  }
}

function fail(text) {
  setPhase(null);
  $("verdict").className = "verdict bad";
  $("verdict").textContent = text;
  running = false;
  $("run").disabled = false;
}

async function run() {
  if (running) return;
  done();
  running = true;
  $("run").disabled = true;
  $("log").textContent = "";
  ["stdout", "stderr"].forEach((k) => ($(k).textContent = ""));
  $("results").hidden = true;
  $("tests").querySelector("tbody").innerHTML = "";
  liveSeen = false;
  for (const k in decoders) delete decoders[k];
  ["time", "wall", "memory", "exit", "jobid"].forEach((k) => ($(k).textContent = k === "jobid" ? "" : "—"));
  setPhase("Pending");
  $("verdict").className = "verdict pending";
  $("verdict").textContent = "submitting…";
  const body = { language: $("language").value, source: editor.getCode() };
  const stdin = $("stdin").value;
  const tests = cases();
  if ($("interactive").checked) body.interactive = true;
  else if (tests.length) {
    body.tests = tests;
    body.stopOnFirstFailure = $("stop-first").checked;
  } else if (stdin) body.stdin = stdin;
  try {
    const r = await fetch("/api/executions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    const v = await r.json().catch(() => ({}));
    if (!r.ok) return fail((v.error && v.error.message) || "HTTP " + r.status);
    log("submitted " + v.id + (body.tests ? " with " + body.tests.length + " test cases" : ""));
    show(v);
    follow(v.id);
  } catch (e) {
    fail("request failed: " + e);
  }
}

// ------------------------------------------------------------------ languages
async function loadLanguages() {
  try {
    const r = await fetch("/api/languages");
    languages = await r.json();
  } catch (e) { log("could not load languages: " + e); }
  const sel = $("language");
  sel.innerHTML = "";
  for (const l of languages) {
    const o = document.createElement("option");
    o.value = l.name;
    o.textContent = l.displayName + " (" + l.version + ")";
    sel.appendChild(o);
  }
  const saved = localStorage.getItem("rce.language");
  if (saved && languages.some((l) => l.name === saved)) sel.value = saved;
  else if (languages.some((l) => l.name === "python")) sel.value = "python";
  pick();
}
function pick() {
  const name = $("language").value;
  const l = languages.find((x) => x.name === name);
  const mode = (l && l.editorMode) || null;
  $("version").textContent = l ? "v" + l.version + (l.aliases.length ? " · aliases: " + l.aliases.join(", ") : "") : "";
  $("mode").textContent = mode ? "mode: " + mode : "plain text";
  $("code").dataset.mode = mode || "plaintext";
  if (current !== null) drafts[current] = editor.getCode();
  current = name;
  editor.setMode(mode);
  // No sample (a language this page does not know): an empty editor.
  editor.setCode(drafts[name] ?? SAMPLES[name] ?? "");
  localStorage.setItem("rce.language", name);
}

$("language").addEventListener("change", pick);
$("typed").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); sendLine(); } });
$("send").addEventListener("click", sendLine);
$("eof").addEventListener("click", () => { log("stdin: EOF"); sendInput({ type: "eof" }); });
$("kill").addEventListener("click", () => { log("signal: SIGKILL"); sendInput({ type: "signal", signal: "SIGKILL" }); });
$("interactive").addEventListener("change", () => { $("stdin").disabled = $("interactive").checked; });
$("run").addEventListener("click", run);
$("stdin").addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); }
});
$("add-case").addEventListener("click", () => addCase().querySelector(".case-stdin").focus());
$("key").value = localStorage.getItem("rce.apikey") || "";
$("key").addEventListener("change", () => localStorage.setItem("rce.apikey", $("key").value));
$("stdin").value = "rce";
casesChanged();
loadLanguages();
