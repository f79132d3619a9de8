// The search page: a text box, a drop zone / file picker, modality chips, and a grid of result tiles, all driven
// by the JSON API (/api/info, /api/search, /api/search/upload, /api/search/item/{id}, /api/items/{id}/...).
"use strict";

(function () {
  const K = 24;
  const $ = (id) => document.getElementById(id);
  const state = { info: null, wanted: new Set(), query: null, previewUrl: null };

  // ---- the API ----------------------------------------------------------------------------------------------
  async function api(path, options) {
    let response;
    try {
      response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    } catch (err) {
      throw new Error(`the server cannot be reached (${err.message})`);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  function params() {
    const p = new URLSearchParams({ k: String(K) });
    if (state.wanted.size) p.set("modality", [...state.wanted].join(","));
    return p;
  }

  // ---- index info and the chips -----------------------------------------------------------------------------
  async function loadInfo() {
    try {
      state.info = await api("/api/info");
    } catch (err) {
      $("index-info").textContent = "";
      return showError(err.message);
    }
    const info = state.info;
    const box = $("index-info");
    box.textContent = "";
    box.append(el("span", "", `${info.count} items`));
    for (const [modality, n] of Object.entries(info.by_modality)) box.append(el("span", "count", `${n} ${modality}`));
    box.append(el("span", "", "· model"), el("span", "model", info.model_name || "?"));
    $("file").accept = info.upload_suffixes.join(",");
    renderChips();
  }

  function renderChips() {
    const chips = $("chips");
    chips.textContent = "";
    chips.append(chip(null, null, state.wanted.size === 0));
    for (const [modality, n] of Object.entries(state.info.by_modality)) {
      chips.append(chip(modality, n, state.wanted.has(modality)));
    }
  }

  function chip(modality, n, pressed) {
    const button = el("button", "chip", modality === null ? "All" : modality);
    button.type = "button";
    button.dataset.modality = modality || "";
    button.setAttribute("aria-pressed", String(pressed));
    if (n !== null) button.append(el("span", "n", String(n)));
    button.addEventListener("click", () => {
      if (modality === null) state.wanted.clear();
      else if (state.wanted.has(modality)) state.wanted.delete(modality);
      else state.wanted.add(modality);
      renderChips();
      chipsFocus(modality);
      if (state.query) run(state.query, false);
    });
    return button;
  }

  function chipsFocus(modality) {
    const again = document.querySelector(`.chip[data-modality="${modality || ""}"]`);
    if (again) again.focus();
  }

  // ---- queries ----------------------------------------------------------------------------------------------
  async function run(query, moveFocus) {
    state.query = query;
    hideError();
    setStatus(`searching…`);
    try {
      let data;
      if (query.kind === "text") {
        const p = params();
        p.set("q", query.text);
        data = await api(`/api/search?${p}`);
      } else if (query.kind === "upload") {
        const form = new FormData();
        form.append("file", query.file, query.file.name);
        data = await api(`/api/search/upload?${params()}`, { method: "POST", body: form });
      } else {
        data = await api(`/api/search/item/${query.id}?${params()}`);
      }
      render(data, query);
      if (moveFocus) $("results").focus();
    } catch (err) {
      setStatus("");
      showError(err.message);
    }
  }

  function describe(data, query) {
    const n = data.hits.length;
    const what = query.kind === "text" ? `“${query.text}”`
      : query.kind === "upload" ? `the ${data.query.modality || ""} file ${query.file.name}`
        : `${data.query.modality} ${data.query.name}`;
    const lead = query.kind === "item" ? "More like" : "Results for";
    const only = state.wanted.size ? ` — only ${[...state.wanted].join(", ")}` : "";
    return `${lead} ${what}: ${n} item${n === 1 ? "" : "s"}${only}`;
  }

  function render(data, query) {
    const status = $("status");
    status.textContent = "";
    const preview = queryPreview(data, query);
    if (preview) status.append(preview);
    status.append(document.createTextNode(describe(data, query)));
    const grid = $("results");
    grid.textContent = "";
    const best = data.hits.length ? Math.max(...data.hits.map((h) => h.score)) : 1;
    for (const hit of data.hits) grid.append(tile(hit, best));
  }

  // A small picture (or player) of what was searched with, beside the status line.
  function queryPreview(data, query) {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = null;
    if (query.kind === "item") {
      const view = state.info && state.info.views[data.query.modality];
      if (!view || !view.thumbnail) return null;
      const img = el("img", "query-thumb");
      img.src = `/api/items/${query.id}/thumbnail`;
      img.alt = "";
      return img;
    }
    if (query.kind !== "upload") return null;
    const kind = query.file.type.split("/")[0];
    const tag = { image: "img", audio: "audio", video: "video" }[kind];
    if (!tag) return null;
    const node = el(tag, kind === "audio" ? "query-audio" : "query-thumb");
    state.previewUrl = URL.createObjectURL(query.file);
    node.src = state.previewUrl;
    if (kind === "image") node.alt = "";
    else {
      node.controls = kind === "audio";
      node.muted = kind === "video"; // a 40-px still of the video; the sound is the tiles' to play
      node.setAttribute("aria-label", `Play the query ${query.file.name}`);
    }
    return node;
  }

  // ---- tiles ------------------------------------------------------------------------------------------------
  function tile(hit, best) {
    const node = $("tile").content.firstElementChild.cloneNode(true);
    node.dataset.modality = hit.modality;
    node.dataset.id = String(hit.id);
    node.setAttribute("aria-label", `${hit.rank}. ${hit.modality} ${hit.name}, score ${hit.score.toFixed(3)}`);
    node.querySelector(".media").append(...media(hit));
    const badge = node.querySelector(".badge");
    badge.textContent = hit.modality;
    badge.classList.add(hit.modality);
    node.querySelector(".score").textContent = hit.score.toFixed(3);
    const name = node.querySelector(".name");
    name.textContent = hit.name;
    name.title = hit.path || hit.name;
    node.querySelector(".label").textContent = hit.label ? `label: ${hit.label}` : "";
    node.querySelector(".bar span").style.width = `${Math.max(2, 100 * Math.max(0, hit.score) / Math.max(best, 1e-6))}%`;
    const more = node.querySelector(".more");
    more.setAttribute("aria-label", `More like ${hit.name}`);
    more.addEventListener("click", () => run({ kind: "item", id: hit.id }, true));
    return node;
  }

  const PLAYERS = {
    image: (hit) => [picture(hit)],
    audio: (hit) => {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = hit.media;
      audio.setAttribute("aria-label", `Play ${hit.name}`);
      return hit.view.thumbnail ? [picture(hit), audio] : [audio];
    },
    video: (hit) => {
      const video = document.createElement("video");
      video.controls = true;
      video.preload = "none";
      video.playsInline = true;
      if (hit.view.thumbnail) video.poster = thumbUrl(hit);
      video.src = hit.media;
      video.setAttribute("aria-label", `Play ${hit.name}`);
      return [video];
    },
    points: (hit) => {
      const canvas = document.createElement("canvas");
      canvas.tabIndex = 0;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `3-D view of ${hit.name}: drag, or use the arrow keys, to turn it`);
      const fallback = hit.view.thumbnail ? picture(hit) : el("div", "file", hit.name);
      api(`/api/items/${hit.id}/points`).then((data) => {
        fallback.replaceWith(canvas);
        new window.PointViewer(canvas, data.points);
      }).catch(() => { /* the thumbnail stays */ });
      return [fallback, el("span", "hint", "drag to turn")];
    },
    text: (hit) => [el("blockquote", "", hit.text || hit.name)],
    file: (hit) => [hit.view.thumbnail ? picture(hit) : el("div", "file", hit.name)],
  };

  function media(hit) {
    return (PLAYERS[hit.view.player] || PLAYERS.file)(hit);
  }

  function thumbUrl(hit) { return `/api/items/${hit.id}/thumbnail`; }

  function picture(hit) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.src = thumbUrl(hit);
    img.alt = `${hit.modality} ${hit.name}`;
    return img;
  }

  // ---- small helpers ----------------------------------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(text) { $("status").textContent = text; }
  function showError(message) { const box = $("error"); box.textContent = message; box.hidden = false; }
  function hideError() { const box = $("error"); box.textContent = ""; box.hidden = true; }

  function pick(file) {
    if (!file) return;
    if (state.info && file.size > state.info.max_upload_bytes) {
      return showError(`${file.name}: ${file.size} bytes is over the upload limit of ${state.info.max_upload_bytes} bytes`);
    }
    run({ kind: "upload", file }, false);
  }

  // ---- wiring -----------------------------------------------------------------------------------------------
  function wire() {
    $("text-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("q").value.trim();
      if (text) run({ kind: "text", text }, false);
    });
    const drop = $("drop");
    const file = $("file");
    drop.addEventListener("click", () => file.click());
    drop.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); file.click(); }
    });
    file.addEventListener("change", () => { pick(file.files[0]); file.value = ""; });
    for (const target of [document.body, drop]) {
      target.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
      target.addEventListener("dragleave", () => drop.classList.remove("over"));
      target.addEventListener("drop", (e) => {
        e.preventDefault();
        e.stopPropagation();
        drop.classList.remove("over");
        pick(e.dataTransfer.files[0]);
      });
    }
    document.addEventListener("keydown", (e) => {
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
      if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); }
      if (e.key === "Escape" && document.activeElement === $("q")) $("q").value = "";
    });
  }

  wire();
  loadInfo();
})();
