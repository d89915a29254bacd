// The console's behaviour: uploads with progress, live analysis status, the player's timeline, and
// actions through the REST API (/v1) authenticated by the session cookie plus the CSRF token.
"use strict";

const LOGIN_ENDED = "/console/login?ended=1";

function csrfToken() {
  // Production's cookie carries the __Host- prefix, development's does not.
  for (const name of ["__Host-ea_csrf=", "ea_csrf="]) {
    const cookie = document.cookie.split("; ").find((part) => part.startsWith(name));
    if (cookie) return decodeURIComponent(cookie.slice(name.length));
  }
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function sessionEnded() {
  window.location.assign(LOGIN_ENDED + "&next=" + encodeURIComponent(window.location.pathname));
}

function errorMessage(body, status) {
  if (body && body.error && body.error.message) return body.error.message;
  return "The server answered " + status + ".";
}

// fetch() against /v1: JSON in and out; a 401 means the session has ended.
async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken(), Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    return { ok: false, status: 0, message: "The server cannot be reached. Check your connection." };
  }
  if (response.status === 401) {
    sessionEnded();
    return { ok: false, status: 401, message: "Your session has ended." };
  }
  let parsed = null;
  const text = await response.text();
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (error) {
    parsed = null; // not JSON (a proxy's error page): the status tells what happened
  }
  return { ok: response.ok, status: response.status, body: parsed, message: errorMessage(parsed, response.status) };
}

function show(element, text) {
  if (!element) return;
  element.textContent = text;
  element.hidden = !text;
}

// --- generic actions: <button data-api-method data-api-url> and <form data-api-method data-api-url> ---

function afterAction(element, result) {
  const done = element.dataset.done || "reload";
  if (done === "reload") window.location.reload();
  else if (done.startsWith("goto:")) window.location.assign(done.slice(5));
  else if (done === "secret") {
    const box = document.getElementById("webhook-secret");
    document.getElementById("secret-value").textContent = result.body.secret;
    element.hidden = true;
    box.hidden = false;
    box.querySelector("button").focus();
  }
}

async function runAction(element, body) {
  if (element.dataset.confirm && !window.confirm(element.dataset.confirm)) return;
  const message = document.querySelector(element.dataset.message || "#none");
  show(message, "");
  element.setAttribute("aria-busy", "true");
  const result = await api(element.dataset.apiMethod, element.dataset.apiUrl, body);
  element.removeAttribute("aria-busy");
  if (result.ok) afterAction(element, result);
  else if (result.status !== 401) {
    show(message, result.message);
    if (message) message.focus?.();
  }
}

function formBody(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    if (field.type === "checkbox") {
      body[field.name] = body[field.name] || [];
      if (field.checked) body[field.name].push(field.value);
    } else if (field.value !== "") body[field.name] = field.value;
  }
  return body;
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-api-method]");
  if (button) runAction(button);
  const reload = event.target.closest("button[data-reload]");
  if (reload) window.location.reload();
  const copy = event.target.closest("button[data-copy]");
  if (copy) copySecret(copy);
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.apiMethod) {
    event.preventDefault();
    runAction(form, formBody(form));
  } else if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

async function copySecret(button) {
  const source = document.querySelector(button.dataset.copy);
  const status = button.closest(".secret").querySelector("[data-copy-status]");
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    show(status, "Copied.");
  } catch (error) {
    const range = document.createRange();
    range.selectNodeContents(source);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    show(status, "Selected: press Ctrl+C (⌘C) to copy.");
  }
}

// --- upload: presigned PUT straight to the object store, else the file in one multipart POST ---

function sendWithProgress(xhr, body, onProgress) {
  return new Promise((resolve) => {
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => resolve(xhr.status);
    xhr.onerror = () => resolve(0);
    xhr.send(body);
  });
}

// S3's POST Object: the signed fields first, the file last; the policy bounds its key and size.
async function postToStore(ticket, file, onProgress) {
  const xhr = new XMLHttpRequest();
  xhr.open("POST", ticket.upload_url);
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
  form.append("file", file, file.name);
  const status = await sendWithProgress(xhr, form, onProgress);
  // S3 answers errors in XML: <Error><Code>EntityTooLarge</Code>…
  const code = (xhr.responseText || "").match(/<Code>([^<]+)<\/Code>/);
  return { status, code: code ? code[1] : null };
}

async function postFile(file, onProgress) {
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/analyses");
  xhr.setRequestHeader("X-CSRF-Token", csrfToken());
  xhr.setRequestHeader("Accept", "application/json");
  const form = new FormData();
  form.append("file", file, file.name);
  const status = await sendWithProgress(xhr, form, onProgress);
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch (error) {
    body = null;
  }
  return { ok: status >= 200 && status < 300, status, body, message: status ? errorMessage(body, status) : "The upload was interrupted." };
}

async function uploadFile(file) {
  const zone = document.getElementById("dropzone");
  const progress = document.getElementById("upload-progress");
  const bar = document.getElementById("upload-bar");
  const label = document.getElementById("upload-label");
  const status = document.getElementById("upload-status");
  const error = document.getElementById("upload-error");
  const input = document.getElementById("file");
  const fail = (text) => {
    progress.hidden = true;
    show(status, "");
    show(error, text);
    input.disabled = false;
    input.value = ""; // the same file may be chosen again
  };
  show(error, "");
  const maxBytes = Number(zone.dataset.maxBytes);
  const extensions = zone.dataset.extensions.split(",");
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  if (!extensions.includes(extension)) {
    fail(`“${file.name}” is not a video or audio file this service reads; supported types are ${extensions.join(", ")}.`);
    return;
  }
  if (file.size > maxBytes) {
    fail(`“${file.name}” (${formatBytes(file.size)}) is larger than the limit of ${formatBytes(maxBytes)}.`);
    return;
  }
  if (file.size === 0) {
    fail(`“${file.name}” is empty.`);
    return;
  }
  input.disabled = true;
  const onProgress = (fraction) => {
    bar.value = Math.round(fraction * 100);
    show(status, `Uploading ${file.name}: ${bar.value}%`);
  };
  progress.hidden = false;
  label.textContent = `Uploading ${file.name}`;
  bar.value = 0;
  const ticket = await api("POST", "/v1/upload-url", { filename: file.name, content_type: file.type || null });
  if (!ticket.ok) return ticket.status === 401 ? undefined : fail(ticket.message);
  let created;
  const stored = await postToStore(ticket.body, file, onProgress);
  const put = stored.status;
  if (put >= 200 && put < 300) {
    show(status, "Uploaded; starting the analysis…");
    created = await api("POST", "/v1/analyses", { key: ticket.body.key });
  } else if (put === 0) {
    // The object store refused the browser's cross-origin request (no CORS for this site): the
    // gateway takes the file itself.
    bar.value = 0;
    created = await postFile(file, onProgress);
    if (created.status === 401) return sessionEnded();
  } else if (stored.code === "EntityTooLarge") {
    return fail(`“${file.name}” is larger than the limit of ${ticket.body.max_bytes} bytes.`);
  } else {
    return fail(`The upload failed: the storage answered ${put}${stored.code ? ` (${stored.code})` : ""}.`);
  }
  if (!created.ok) return created.status === 401 ? undefined : fail(created.message);
  show(status, "Analysis started.");
  window.location.assign("/console/analyses/" + created.body.id);
}

function formatBytes(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function setUpUpload() {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("file");
  input.addEventListener("change", () => {
    if (input.files.length) uploadFile(input.files[0]);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length && !input.disabled) uploadFile(event.dataTransfer.files[0]);
  });
}

// --- an analysis: live status while it runs, then the player and its timeline ---

const STAGE_ORDER = ["upload", "transcribe", "encode_video", "encode_audio", "fuse"];

function showProgress(analysis) {
  const live = document.getElementById("live-status");
  show(live, `${analysis.status}${analysis.stage ? ": " + analysis.stage : ""}…`);
  const reached = STAGE_ORDER.indexOf(analysis.stage);
  document.querySelectorAll("#stages li").forEach((item, index) => {
    item.classList.toggle("done", index < reached);
    if (index === reached) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  });
  document.getElementById("status").textContent = analysis.status;
}

function followAnalysis(root) {
  const id = root.dataset.analysisId;
  const events = new EventSource(`/v1/analyses/${id}/events`);
  events.addEventListener("status", (event) => showProgress(JSON.parse(event.data)));
  const finished = () => {
    events.close();
    window.location.reload();
  };
  events.addEventListener("completed", finished);
  events.addEventListener("failed", finished);
  events.onerror = async () => {
    events.close();
    // The stream ended or broke: ask once why (an ended session is a 401), then follow again.
    const answer = await api("GET", `/v1/analyses/${id}`);
    if (answer.status === 401) return;
    if (answer.ok && (answer.body.status === "completed" || answer.body.status === "failed")) {
      window.location.reload();
    } else {
      window.setTimeout(() => followAnalysis(root), 2000);
    }
  };
}

function setUpPlayer() {
  const player = document.getElementById("player");
  if (!player) return;
  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-start]");
    if (!target) return;
    player.currentTime = Number(target.dataset.start);
    player.focus();
  });
  const utterances = Array.from(document.querySelectorAll("#timeline .utterance"));
  player.addEventListener("timeupdate", () => {
    const now = player.currentTime;
    utterances.forEach((button) => {
      const playing = now >= Number(button.dataset.start) && now < Number(button.dataset.end);
      button.classList.toggle("playing", playing);
    });
  });
}

// One speaker's utterances only: the timeline, the table and the lanes show theirs, the rest are hidden.
function setUpSpeakerFilter() {
  const filter = document.getElementById("speaker-filter");
  if (!filter) return;
  filter.addEventListener("change", () => {
    const chosen = filter.value;
    document.querySelectorAll("#timeline li[data-speaker], #utterances tr[data-speaker], .lane").forEach((item) => {
      item.hidden = chosen !== "" && item.dataset.speaker !== chosen;
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUpload();
  setUpPlayer();
  setUpSpeakerFilter();
  const root = document.getElementById("analysis");
  if (root && (root.dataset.status === "queued" || root.dataset.status === "processing")) followAnalysis(root);
});
