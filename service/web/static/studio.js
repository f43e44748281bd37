// The comparison studio: our codec beside JPEG, WebP, AVIF and JPEG XL at the same bytes, on the user's photo.
// Plain JavaScript served by the gateway: no build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const TARGETS = {
  ssimulacra2: { min: 10, max: 95, step: 1, value: 70 },
  msssim: { min: 0.8, max: 0.999, step: 0.005, value: 0.95 },
  psnr: { min: 20, max: 50, step: 0.5, value: 35 },
  bpp: { min: 0.05, max: 8, step: 0.05, value: 0.5 },
};
const state = { file: null, original: null, views: [], steps: [], timer: null };

function setTargetRange() {
  const t = TARGETS[$("kind").value];
  Object.assign($("value"), { min: t.min, max: t.max, step: t.step, value: t.value });
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("drop-text").textContent = `${file.name} (${formatBytes(file.size)}), press the button to compare, or drop another`;
}

function formatBytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;
}

function describeError(status, body, retryAfter) {
  const message = (body && body.error && body.error.message) || "no details";
  switch (status) {
    case 400: return `The request was not accepted: ${message}.`;
    case 401: return `This service needs an API key (Authorization: Bearer …): ${message}.`;
    case 413: return `The image is too large for this page: ${message}. Try a smaller photo, or use the API's /compress.`;
    case 415: return `This file is not an image the service can read: ${message}. Try a PNG, JPEG or WebP.`;
    case 422: return `The service could not process this input: ${message}.`;
    case 503: return `The service is busy or restarting; try again in ${retryAfter || "a few"} seconds. (${message})`;
    default: return `Something went wrong (HTTP ${status}): ${message}.`;
  }
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
}

function showProgress(stage, share) {
  $("progress-box").hidden = false;
  $("progress").value = share;
  $("status").textContent = `${stage}… ${Math.round(100 * share)} %`;
}

async function runComparison(form) {
  const response = await fetch("/compare", { method: "POST", body: form, headers: { Prefer: "respond-async" } });
  let body = await response.json().catch(() => null);
  if (response.status !== 202) {
    if (!response.ok) throw new Error(describeError(response.status, body, response.headers.get("Retry-After")));
    return body;
  }
  while (body.status !== "done" && body.status !== "failed") {
    await new Promise((resolve) => setTimeout(resolve, 300));
    body = await (await fetch(body.url)).json();
    showProgress(body.stage, body.progress);
  }
  if (body.status === "failed") throw new Error(describeError(body.http_status, body));
  return body.result;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

// The network's iterations, the refinement layer (an 8×8 DCT coder, decision 28) or both.
function ourSetting(ours) {
  if (!ours.refinement_bytes) return `${ours.iterations} iterations`;
  return ours.iterations ? `${ours.iterations} iterations + refinement layer` : "refinement layer (DCT)";
}

function renderFigures(result) {
  const ours = result.ours;
  const rows = [
    { name: "ours", quality: ourSetting(ours), bytes: ours.bytes, bpp: ours.bpp, ssimulacra2: ours.ssimulacra2, msssim: ours.msssim, psnr: ours.psnr, cls: "ours" },
    ...result.classic.map((c) => c.fits
      ? { name: c.codec, quality: `q ${c.quality}`, bytes: c.bytes, bpp: c.bpp, ssimulacra2: c.ssimulacra2, msssim: c.msssim, psnr: c.psnr }
      : { name: c.codec, quality: "does not fit", bytes: null, bpp: null, ssimulacra2: null, msssim: null, psnr: null }),
    { name: "original upload", quality: "", bytes: state.file.size, bpp: (8 * state.file.size) / (ours.width * ours.height), ssimulacra2: 100, msssim: 1, psnr: null },
  ];
  const tbody = $("figures").querySelector("tbody");
  tbody.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    if (r.cls) tr.className = r.cls;
    tr.dataset.codec = r.name;
    for (const text of [r.name, r.quality, r.bytes === null ? "–" : r.bytes.toLocaleString("en"),
      fmt(r.bpp, 3), fmt(r.ssimulacra2, 1), fmt(r.msssim, 4), fmt(r.psnr, 2)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
}

function renderViews(result) {
  const ours = result.ours;
  state.views = [
    { key: "original", label: "original", src: state.original },
    { key: "ours", label: `ours (${ours.coder}): ${ours.bytes.toLocaleString("en")} B, SSIMULACRA 2 ${fmt(ours.ssimulacra2, 1)}`, src: ours.urls.decompress },
    ...result.classic.filter((c) => c.fits).map((c) => ({
      key: c.codec, label: `${c.codec} q${c.quality}: ${c.bytes.toLocaleString("en")} B, SSIMULACRA 2 ${fmt(c.ssimulacra2, 1)}`, src: c.url,
    })),
  ];
  for (const [select, initial] of [[$("left"), "ours"], [$("right"), state.views[2] ? state.views[2].key : "original"]]) {
    select.replaceChildren(...state.views.map((v) => new Option(v.key, v.key, false, v.key === initial)));
  }
  $("grid").replaceChildren(...state.views.filter((v) => v.key !== "original").map((v) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    Object.assign(img, { src: v.src, alt: v.label, title: "show in the split view" });
    img.dataset.codec = v.key;
    img.tabIndex = 0;
    const show = () => { $("right").value = v.key; updateSplit(); $("stage").scrollIntoView({ behavior: "smooth" }); };
    img.addEventListener("click", show);
    img.addEventListener("keydown", (e) => { if (e.key === "Enter") show(); });
    const caption = document.createElement("figcaption");
    caption.textContent = v.label;
    figure.append(img, caption);
    return figure;
  }));
  updateSplit();
}

function viewSrc(key) {
  return state.views.find((v) => v.key === key).src;
}

function updateSplit() {
  if (!state.views.length) return;
  const left = $("left-image"), right = $("right-image");
  if (left.dataset.key !== $("left").value) { left.src = viewSrc($("left").value); left.dataset.key = $("left").value; }
  if (right.dataset.key !== $("right").value) { right.src = viewSrc($("right").value); right.dataset.key = $("right").value; }
  const split = Number($("split").value);
  right.style.clipPath = `inset(0 0 0 ${split}%)`;
  $("divider").style.left = `${split}%`;
  const zoom = document.querySelector("input[name=zoom]:checked").value;
  const stage = $("stage");
  stage.classList.toggle("fit", zoom === "fit");
  stage.classList.toggle("zoomed", zoom !== "fit");
  for (const img of [left, right]) {
    img.style.width = zoom === "fit" ? "" : `${(left.naturalWidth || 0) * Number(zoom)}px`;
    img.style.height = zoom === "fit" ? "" : `${(left.naturalHeight || 0) * Number(zoom)}px`;
  }
}

function renderSteps(result) {
  state.steps = result.steps;
  const slider = $("step");
  slider.max = String(state.steps.length);
  slider.value = String(state.steps.length);
  for (const step of state.steps) new Image().src = step.url; // preload, so playback is smooth
  showStep();
}

function showStep() {
  const k = Number($("step").value);
  const step = state.steps[k - 1];
  const total = state.steps[state.steps.length - 1].bytes;
  $("step-image").src = step.url;
  // the layer shows its block means first, then the whole layer (the last step)
  const layer = k < state.steps.length ? "the refinement layer's block means" : "the refinement layer";
  $("step-text").textContent =
    `${step.refinement ? layer : `${k} of ${state.steps.length} iterations`}: ${step.bytes.toLocaleString("en")} bytes (${Math.round((100 * step.bytes) / total)} % of the file)`;
}

function togglePlay() {
  if (state.timer) { clearInterval(state.timer); state.timer = null; $("play").textContent = "Play"; return; }
  $("play").textContent = "Pause";
  $("step").value = "1";
  showStep();
  state.timer = setInterval(() => {
    const slider = $("step");
    if (Number(slider.value) >= state.steps.length) { togglePlay(); return; }
    slider.value = String(Number(slider.value) + 1);
    showStep();
  }, 700);
}

function renderTakeaway(result) {
  const ours = result.ours;
  const stem = state.file.name.replace(/\.[^.]+$/, "") || "image";
  Object.assign($("download-bitstream"), { href: ours.urls.bitstream, download: `${stem}.rgic` });
  Object.assign($("download-png"), { href: ours.urls.decompress, download: `${stem}-rgic.png` });
  const kind = $("kind").value, value = $("value").value;
  $("curl").textContent =
    `curl -F image=@${JSON.stringify(state.file.name)} -F ${kind}=${value} -H 'Accept: application/octet-stream' ` +
    `-o ${JSON.stringify(stem + ".rgic")} ${location.origin}/compress`;
}

async function copyCurl() {
  const text = $("curl").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copy").textContent = "Copied";
  } catch {
    getSelection().selectAllChildren($("curl")); // the user can press Ctrl+C
    $("copy").textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { $("copy").textContent = "Copy curl command"; }, 2000);
}

async function submit(event) {
  event.preventDefault();
  $("error").hidden = true;
  if (!state.file) { showError("Choose or drop an image first."); return; }
  const form = new FormData();
  form.append("image", state.file);
  form.append($("kind").value, $("value").value);
  if (state.original) URL.revokeObjectURL(state.original);
  state.original = URL.createObjectURL(state.file);
  $("go").disabled = true;
  showProgress("uploading", 0);
  try {
    const result = await runComparison(form);
    renderFigures(result);
    renderViews(result);
    renderSteps(result);
    renderTakeaway(result);
    $("results").hidden = false;
    $("status").textContent = "done";
  } catch (error) {
    showError(error instanceof TypeError ? `The service did not answer (${error.message}).` : error.message);
    $("progress-box").hidden = true;
  } finally {
    $("go").disabled = false;
  }
}

function wire() {
  $("kind").addEventListener("change", setTargetRange);
  $("file").addEventListener("change", () => chooseFile($("file").files[0]));
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); chooseFile(e.dataTransfer.files[0]); });
  $("form").addEventListener("submit", submit);
  for (const id of ["left", "right", "split"]) $(id).addEventListener("input", updateSplit);
  for (const radio of document.querySelectorAll("input[name=zoom]")) radio.addEventListener("change", updateSplit);
  $("left-image").addEventListener("load", updateSplit);
  $("stage").addEventListener("keydown", (e) => {
    const delta = { ArrowLeft: -5, ArrowRight: 5 }[e.key];
    if (!delta) return;
    e.preventDefault();
    $("split").value = String(Math.min(100, Math.max(0, Number($("split").value) + delta)));
    updateSplit();
  });
  $("step").addEventListener("input", showStep);
  $("play").addEventListener("click", togglePlay);
  $("copy").addEventListener("click", copyCurl);
  setTargetRange();
}

wire();
