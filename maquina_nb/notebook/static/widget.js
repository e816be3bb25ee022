// Comparison table for maquina_nb's ComparisonWidget (anywidget ES module, no build step).
//
// The kernel sends the whole table as widget state (`run`, `items`, `cells`) and then
// small custom messages: `patch` (changed cells, streamed text as appends with
// [start, text, end] offsets in Python characters), `full` (the whole text of one long
// answer) and `ack` (a click was handled). Answers arrive as HTML that the kernel
// rendered with raw HTML disabled and sanitized; every other string from the kernel
// goes in through textContent. Clicks go back as custom messages; nothing here calls
// save_changes, so the page never sends the table back to the kernel.

const ENDED = new Set([
  "done", "cached", "truncated", "empty", "tool_call_only", "content_filtered",
  "failed", "skipped", "cancelled",
]);
const PLACEHOLDERS = {
  queued: "Waiting to be sent.",
  streaming: "Waiting for the first words…",
  empty: "(The model returned no text.)",
  tool_call_only: "(The model answered with a tool call only, no text.)",
  content_filtered: "(The provider's content filter stopped this answer.)",
  skipped: "(Skipped: the run's budget was reached first.)",
  cancelled: "(Cancelled before it finished.)",
  failed: "(Failed.)",
};
const UNANSWERED = new Set(["failed", "skipped", "cancelled"]);
const BLOCKED_TAGS = new Set([
  "script", "style", "iframe", "object", "embed", "link", "meta", "base", "form",
  "svg", "math", "frame", "frameset", "template",
  // Nothing is fetched without a click: the kernel turns images into links.
  "img", "picture", "source", "video", "audio", "track", "image",
]);
const URL_ATTRS = new Set(["href", "src", "action", "formaction", "xlink:href", "srcset"]);
const SAFE_URL = /^(https?:|mailto:|#)/i;
const CARDS_ABOVE = 4; // more models than this: one card per item instead of a wide table

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function button(label, className, ariaLabel, onClick) {
  const node = el("button", `mq-btn ${className || ""}`.trim(), label);
  node.type = "button";
  if (ariaLabel) {
    node.setAttribute("aria-label", ariaLabel);
    node.title = ariaLabel;
  }
  node.addEventListener("click", onClick);
  return node;
}

// The kernel already sanitized this HTML (render.py). Parsing it in an inert
// <template> and dropping anything script-capable again costs little and keeps the
// page safe even if a future kernel-side change let something through.
function setSafeHTML(node, html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  for (const child of Array.from(template.content.querySelectorAll("*"))) {
    if (BLOCKED_TAGS.has(child.localName)) {
      child.remove();
      continue;
    }
    for (const attr of Array.from(child.attributes)) {
      const name = attr.name.toLowerCase();
      const value = attr.value.replace(/[\s\u0000-\u001f]+/g, "");
      if (name.startsWith("on")) child.removeAttribute(attr.name);
      else if (URL_ATTRS.has(name) && !SAFE_URL.test(value)) child.removeAttribute(attr.name);
      else if (name === "style" && !/^text-align:\s*(left|right|center);?$/i.test(attr.value.trim())) {
        child.removeAttribute(attr.name);
      }
    }
    if (child.localName === "a") {
      child.setAttribute("target", "_blank");
      child.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
  node.replaceChildren(template.content);
}

// The prompt cell: the prompt, or every user turn of a multi-turn item under its number.
function fillPrompt(node, item) {
  const turns = item.turns && item.turns.length ? item.turns : [item.prompt || ""];
  if (turns.length === 1) {
    node.textContent = turns[0];
    return node;
  }
  turns.forEach((turn, i) => node.append(el("div", "mq-turn-label", `Turn ${i + 1}`), el("div", "mq-turn", turn)));
  return node;
}

// Dollars as maquina_nb/_money.py writes them: cents from a dollar up, three
// significant digits below ($0.00002 stays visible), scientific below a billionth.
export function money(value) {
  if (value === null || value === undefined) return "–";
  const amount = Number(value);
  if (!Number.isFinite(amount)) return `$${amount}`;
  const sign = amount < 0 ? "-" : "";
  const magnitude = Math.abs(amount);
  if (magnitude === 0) return "$0.00";
  if (magnitude < 1e-9) return `${sign}$${magnitude.toExponential(2)}`;
  const decimals = Math.max(2, 2 - Math.floor(Math.log10(magnitude)));
  const [whole, fraction = ""] = magnitude.toFixed(decimals).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}$${grouped}.${fraction.replace(/0+$/, "").padEnd(2, "0")}`;
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
}

function statusLabel(cell) {
  const label = String(cell.status || "").replace(/_/g, " ");
  return cell.status === "failed" && cell.error_kind ? `failed (${cell.error_kind})` : label;
}

function metrics(cell) {
  const parts = [];
  if (cell.latency_s != null) parts.push(`${cell.latency_s.toFixed(2)} s`);
  if (cell.ttft_s != null) parts.push(`TTFT ${cell.ttft_s.toFixed(2)} s`);
  if (cell.input_tokens != null || cell.output_tokens != null) {
    parts.push(`${cell.input_tokens ?? "–"} → ${cell.output_tokens ?? "–"} tok`);
  }
  if (cell.cost_usd != null) parts.push(money(cell.cost_usd));
  return parts.join(" · ");
}

// Apply one kernel patch to the model's own run and cells objects, in place, so a
// view created later (JupyterLab draws outputs lazily) starts from the live table
// and a notebook saved with widget state holds it. Returns what views must redraw.
function applyPatch(model, msg) {
  const run = model.get("run") || {};
  const cells = model.get("cells") || {};
  const picksBefore = JSON.stringify(run.decisions || {});
  if (msg.run) {
    for (const key of Object.keys(run)) if (!(key in msg.run)) delete run[key];
    Object.assign(run, msg.run);
  }
  const keys = new Set();
  let failures = false;
  for (const [key, update] of Object.entries(msg.cells || {})) {
    const old = cells[key] || {};
    const next = { ...old, ...update };
    if (!("text" in update)) {
      next.text = old.text || "";
      next.n = old.n || 0;
      next.gap = old.gap || false;
    } else {
      next.gap = false;
    }
    if (update.status === "failed") failures = true;
    cells[key] = next;
    keys.add(key);
  }
  for (const [key, [start, piece, end]] of Object.entries(msg.appends || {})) {
    const cell = cells[key];
    if (!cell) continue;
    const have = cell.n || 0;
    if (start === have) {
      cell.text = (cell.text || "") + piece;
      cell.n = end;
    } else if (start < have && end > have) {
      cell.text = (cell.text || "") + Array.from(piece).slice(have - start).join("");
      cell.n = end;
    } else if (start > have) {
      // Text sent before this page listened is missing: mark the hole and go on;
      // the kernel's next keyframe or the finished answer replaces the text whole.
      cell.text = `${cell.text || ""} […] ${piece}`;
      cell.n = end;
      cell.gap = true;
    }
    keys.add(key);
  }
  return { keys: [...keys], failures, picks: picksBefore !== JSON.stringify(run.decisions || {}) };
}

let tickSeq = 0;

// Model-level listener, registered as soon as the module loads (before any view):
// it applies patches and tells the views through a page-only `_mq_tick` attribute.
function initialize({ model }) {
  const onMessage = (msg) => {
    if (!msg || typeof msg !== "object") return;
    const tick = { seq: ++tickSeq, kind: msg.kind, ack: msg.ack ?? null, keys: [] };
    if (msg.kind === "patch") Object.assign(tick, applyPatch(model, msg));
    else if (msg.kind === "full") Object.assign(tick, { key: msg.key, text: String(msg.text ?? "") });
    model.set("_mq_tick", tick);
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

class ComparisonView {
  constructor(model, root) {
    this.model = model;
    this.root = root;
    this.page = 0;
    this.modelFilter = "";
    this.failuresOnly = false;
    this.layout = "auto";
    this.cellViews = new Map();
    this.fullTexts = new Map();
    this.openComments = new Set();
    this.dismissed = new Set();
    this.asked = new Set();
    this.viewId = Math.random().toString(36).slice(2, 10);
    this.reqSeq = 0;
    this.pending = new Map();
    this.loadFromModel();
    this.build();
    this.draw();
  }

  loadFromModel() {
    // The same objects the model holds: initialize() patches them in place.
    this.run = this.model.get("run") || {};
    this.items = this.model.get("items") || [];
    this.cells = this.model.get("cells") || {};
  }

  // -- kernel messages ---------------------------------------------------

  onModelChange() {
    this.loadFromModel();
    this.draw();
  }

  onTick() {
    const tick = this.model.get("_mq_tick");
    if (!tick) return;
    if (tick.kind === "patch") {
      this.drawHeader();
      if (this.bodyMode() !== this.drawnMode) this.drawBody();
      else if (this.failuresOnly && tick.failures) this.drawBody();
      else if (tick.picks) this.refreshAllCells();
      else for (const key of tick.keys) this.updateCell(key);
    } else if (tick.kind === "full" && this.asked.has(tick.key)) {
      this.fullTexts.set(tick.key, tick.text);
      this.updateCell(tick.key);
    }
    if (tick.ack !== null) this.settle(tick.ack);
  }

  send(content, control) {
    const req = `${this.viewId}:${++this.reqSeq}`;
    if (content.kind === "show_full") this.asked.add(content.key);
    if (control) {
      control.classList.add("mq-saving");
      control.setAttribute("aria-busy", "true");
      this.pending.set(req, control);
    }
    this.model.send({ ...content, req });
  }

  settle(req) {
    const control = this.pending.get(req);
    if (!control) return;
    this.pending.delete(req);
    control.classList.remove("mq-saving");
    control.removeAttribute("aria-busy");
  }

  // -- layout ------------------------------------------------------------

  build() {
    this.root.replaceChildren();
    this.root.classList.add("mq-root");
    this.root.setAttribute("role", "region");
    this.root.setAttribute("aria-label", "Model comparison");

    const header = el("div", "mq-header");
    this.titleEl = el("span", "mq-title");
    this.runStatusEl = el("span", "mq-badge");
    this.progressEl = el("div", "mq-progress");
    this.progressEl.setAttribute("role", "progressbar");
    this.progressEl.setAttribute("aria-label", "Responses finished");
    this.progressEl.setAttribute("aria-valuemin", "0");
    this.progressDone = el("div", "mq-progress-done");
    this.progressFailed = el("div", "mq-progress-failed");
    this.progressEl.append(this.progressDone, this.progressFailed);
    this.statsEl = el("div", "mq-stats");
    this.statsEl.setAttribute("aria-live", "off");
    const titleRow = el("div", "mq-title-row");
    titleRow.append(this.titleEl, this.runStatusEl);
    header.append(titleRow, this.progressEl, this.statsEl);

    this.noticesEl = el("div", "mq-notices");
    this.noticesEl.setAttribute("aria-live", "polite");

    const toolbar = el("div", "mq-toolbar");
    const modelLabel = el("label", "mq-field", "Model ");
    this.modelSelect = el("select", "mq-select");
    this.modelSelect.setAttribute("aria-label", "Filter by model");
    this.modelSelect.addEventListener("change", () => {
      this.modelFilter = this.modelSelect.value;
      this.page = 0;
      this.drawBody();
    });
    modelLabel.append(this.modelSelect);
    const failLabel = el("label", "mq-field");
    this.failBox = el("input");
    this.failBox.type = "checkbox";
    this.failBox.addEventListener("change", () => {
      this.failuresOnly = this.failBox.checked;
      this.page = 0;
      this.drawBody();
    });
    failLabel.append(this.failBox, document.createTextNode(" Failures only"));
    const layoutLabel = el("label", "mq-field", "Layout ");
    this.layoutSelect = el("select", "mq-select");
    this.layoutSelect.setAttribute("aria-label", "Layout");
    for (const [value, text] of [["auto", "Auto"], ["table", "Table"], ["cards", "Cards"]]) {
      const option = el("option", null, text);
      option.value = value;
      this.layoutSelect.append(option);
    }
    this.layoutSelect.addEventListener("change", () => {
      this.layout = this.layoutSelect.value;
      this.drawBody();
    });
    layoutLabel.append(this.layoutSelect);
    this.revealBtn = button("Reveal models", "mq-reveal", "Reveal which model wrote each answer", () =>
      this.send({ kind: "reveal" }, this.revealBtn));
    const pager = el("div", "mq-pager");
    pager.setAttribute("role", "navigation");
    pager.setAttribute("aria-label", "Pages");
    this.prevBtn = button("‹ Previous", "", "Previous page", () => this.goto(this.page - 1));
    this.pageInfo = el("span", "mq-page-info");
    this.pageInfo.setAttribute("aria-live", "polite");
    this.nextBtn = button("Next ›", "", "Next page", () => this.goto(this.page + 1));
    pager.append(this.prevBtn, this.pageInfo, this.nextBtn);
    toolbar.append(modelLabel, failLabel, layoutLabel, this.revealBtn, pager);
    this.toolbarEl = toolbar;

    this.bodyEl = el("div", "mq-body");
    this.root.append(header, this.noticesEl, toolbar, this.bodyEl);
  }

  draw() {
    this.drawHeader();
    this.drawToolbar();
    this.drawBody();
  }

  drawHeader() {
    const run = this.run;
    this.titleEl.textContent = run.name || (run.run_id ? `Run ${run.run_id}` : "Comparison");
    this.runStatusEl.textContent = run.status || "";
    this.runStatusEl.className = `mq-badge mq-st-${run.status || "pending"}`;
    const total = run.total || 0;
    const done = run.done || 0;
    const failed = (run.failed || 0) + (run.skipped || 0) + (run.cancelled || 0);
    this.progressEl.setAttribute("aria-valuemax", String(total));
    this.progressEl.setAttribute("aria-valuenow", String(done + failed));
    this.progressDone.style.width = total ? `${(100 * done) / total}%` : "0";
    this.progressFailed.style.width = total ? `${(100 * failed) / total}%` : "0";
    this.receivedAt = Date.now();
    this.drawStats();
    this.drawNotices();
    this.revealBtn.hidden = !(run.blind && !run.revealed);
  }

  drawStats() {
    const run = this.run;
    const parts = [`${run.done || 0} / ${run.total || 0} done`];
    if (run.streaming) parts.push(`${run.streaming} streaming`);
    if (run.failed) parts.push(`${run.failed} failed`);
    if (run.skipped) parts.push(`${run.skipped} skipped`);
    if (run.cancelled) parts.push(`${run.cancelled} cancelled`);
    let spend = `spent ${money(run.cost_usd || 0)}${run.cost_complete === false ? "+" : ""}`;
    if (run.max_cost_usd != null) spend += ` of ${money(run.max_cost_usd)} budget`;
    if (run.estimated_cost_usd != null) spend += ` (estimate ${money(run.estimated_cost_usd)})`;
    parts.push(spend);
    const running = !run.finished && run.status === "running";
    const extra = running ? (Date.now() - (this.receivedAt || Date.now())) / 1000 : 0;
    parts.push(`${duration((run.elapsed_s || 0) + extra)} elapsed`);
    this.statsEl.textContent = parts.join(" · ");
  }

  drawNotices() {
    const notices = (this.run.notices || []).filter((n) => !this.dismissed.has(n.id));
    this.noticesEl.replaceChildren(...notices.map((notice) => {
      const node = el("div", `mq-notice mq-notice-${notice.level}`);
      node.setAttribute("role", notice.level === "error" ? "alert" : "status");
      node.append(el("span", null, notice.text));
      node.append(button("Dismiss", "mq-dismiss", "Dismiss this message", () => {
        this.dismissed.add(notice.id);
        this.drawNotices();
      }));
      return node;
    }));
  }

  drawToolbar() {
    const run = this.run;
    const hidden = run.blind && !run.revealed;
    const options = [["", hidden ? "All (hidden until revealed)" : "All models"]];
    if (!hidden) for (const model of run.models || []) options.push([model, model]);
    this.modelSelect.replaceChildren(...options.map(([value, text]) => {
      const option = el("option", null, text);
      option.value = value;
      return option;
    }));
    if (!options.some(([value]) => value === this.modelFilter)) this.modelFilter = "";
    this.modelSelect.value = this.modelFilter;
    this.modelSelect.disabled = hidden;
  }

  visibleItems() {
    if (!this.failuresOnly) return this.items;
    const failing = new Set();
    for (const cell of Object.values(this.cells)) if (cell.status === "failed") failing.add(cell.item);
    return this.items.filter((item) => failing.has(item.index));
  }

  goto(page) {
    this.page = page;
    this.drawBody();
  }

  useCards() {
    const columns = (this.run.columns || []).length;
    return this.layout === "cards" || (this.layout === "auto" && columns > CARDS_ABOVE && !this.modelFilter);
  }

  // Cell keys by item, built once per drawing so a page costs O(cells), not O(items x cells).
  indexCells() {
    this.byItem = new Map();
    for (const [key, cell] of Object.entries(this.cells)) {
      if (!this.byItem.has(cell.item)) this.byItem.set(cell.item, []);
      this.byItem.get(cell.item).push(key);
    }
  }

  cellsOf(item) {
    const byPos = new Map();
    for (const key of this.byItem.get(item) || []) {
      const cell = this.cells[key];
      if (this.modelFilter && cell.model !== this.modelFilter) continue;
      const pos = this.modelFilter ? 0 : cell.pos;
      if (!byPos.has(pos)) byPos.set(pos, []);
      byPos.get(pos).push(key);
    }
    for (const keys of byPos.values()) keys.sort((a, b) => this.cells[a].sample - this.cells[b].sample);
    return byPos;
  }

  // "preparing" until the kernel names the run (cache and budget checks run
  // first), "refused" if it was refused before sending anything, else "table".
  bodyMode() {
    if (this.run.status === "refused") return "refused";
    return !this.run.run_id && (this.run.status || "pending") === "pending" ? "preparing" : "table";
  }

  drawBody() {
    this.drawToolbar();
    this.cellViews.clear();
    this.drawnMode = this.bodyMode();
    const table = this.drawnMode === "table";
    this.toolbarEl.hidden = !table;
    this.progressEl.hidden = this.drawnMode === "refused";
    this.statsEl.hidden = this.drawnMode === "refused";
    if (!table) {
      // Rows that may never be sent are not shown: a refused run says why instead.
      const refused = this.drawnMode === "refused";
      const note = el("p", refused ? "mq-refused" : "mq-preparing",
        refused ? this.run.refusal || "The run was refused." : "Preparing the run: checking the cache and the budget…");
      note.setAttribute("role", refused ? "alert" : "status");
      this.bodyEl.replaceChildren(note);
      return;
    }
    const items = this.visibleItems();
    const size = Math.max(1, this.model.get("page_size") || 25);
    const pages = Math.max(1, Math.ceil(items.length / size));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const shown = items.slice(this.page * size, (this.page + 1) * size);
    this.prevBtn.disabled = this.page === 0;
    this.nextBtn.disabled = this.page >= pages - 1;
    this.pageInfo.textContent = items.length
      ? `Page ${this.page + 1} of ${pages} · items ${this.page * size + 1}–${this.page * size + shown.length} of ${items.length}`
      : "No items to show";

    const columns = this.modelFilter ? [this.modelFilter] : this.run.columns || [];
    this.indexCells();
    const body = this.useCards() ? this.drawCards(shown) : this.drawTable(shown, columns);
    this.bodyEl.replaceChildren(body);
    this.askForRendering();
  }

  drawTable(items, columns) {
    const table = el("table", "mq-table");
    const head = el("thead");
    const headRow = el("tr");
    headRow.append(el("th", "mq-col-index", "#"), el("th", "mq-col-prompt", "Prompt"));
    for (const column of columns) {
      const th = el("th", null, column);
      th.scope = "col";
      headRow.append(th);
    }
    head.append(headRow);
    const tbody = el("tbody");
    for (const item of items) {
      const row = el("tr");
      const index = el("th", "mq-col-index", String(item.index));
      index.scope = "row";
      row.append(index, fillPrompt(el("td", "mq-prompt"), item));
      const byPos = this.cellsOf(item.index);
      for (let pos = 0; pos < columns.length; pos++) {
        const td = el("td", "mq-slot");
        for (const key of byPos.get(pos) || []) td.append(this.cellView(key).node);
        row.append(td);
      }
      tbody.append(row);
    }
    table.append(head, tbody);
    const wrap = el("div", "mq-table-wrap");
    wrap.append(table);
    return wrap;
  }

  drawCards(items) {
    const list = el("div", "mq-cards");
    for (const item of items) {
      const card = el("section", "mq-card");
      card.setAttribute("aria-label", `Item ${item.index}`);
      card.append(el("h4", "mq-card-title", `Item ${item.index}`), fillPrompt(el("div", "mq-prompt"), item));
      const grid = el("div", "mq-card-grid");
      const byPos = this.cellsOf(item.index);
      for (const pos of [...byPos.keys()].sort((a, b) => a - b)) {
        for (const key of byPos.get(pos)) grid.append(this.cellView(key, true).node);
      }
      card.append(grid);
      list.append(card);
    }
    return list;
  }

  askForRendering() {
    const keys = [...this.cellViews.keys()].filter((key) => {
      const cell = this.cells[key];
      return cell && ENDED.has(cell.status) && !cell.html && cell.text;
    });
    if (keys.length) this.model.send({ kind: "render", keys });
  }

  // -- cells -------------------------------------------------------------

  cellView(key, showLabel) {
    const view = { key, showLabel: Boolean(showLabel) };
    view.node = el("article", "mq-cell");
    view.node.dataset.key = key;
    view.head = el("div", "mq-cell-head");
    view.answer = el("div", "mq-answer");
    view.answer.tabIndex = 0;
    view.error = el("div", "mq-error");
    view.turns = el("div", "mq-turns");
    view.capped = el("div", "mq-capped");
    view.full = el("pre", "mq-full");
    view.actions = this.actions(key, view);
    view.node.append(view.head, view.error, view.turns, view.answer, view.capped, view.full, view.actions.node);
    this.cellViews.set(key, view);
    this.fillCell(view);
    return view;
  }

  updateCell(key) {
    const view = this.cellViews.get(key);
    if (view) this.fillCell(view);
  }

  fillCell(view) {
    const cell = this.cells[view.key] || {};
    const label = cell.model || (view.showLabel || this.modelFilter ? this.run.columns?.[cell.pos] : "");
    view.node.className = `mq-cell mq-cell-${cell.status}`;
    view.node.setAttribute("aria-label", `${label || "Answer"}${cell.sample ? `, sample ${cell.sample + 1}` : ""}: ${statusLabel(cell)}`);

    const head = [];
    const badge = el("span", `mq-badge mq-st-${cell.status}`, statusLabel(cell));
    head.push(badge);
    // The column header names the model in a plain table; cards, filters and a
    // revealed blind run name it in the cell.
    if (label && (view.showLabel || this.modelFilter || this.run.blind)) head.push(el("span", "mq-model", label));
    if (cell.sample) head.push(el("span", "mq-sample", `sample ${cell.sample + 1}`));
    head.push(el("span", "mq-metrics", metrics(cell)));
    view.head.replaceChildren(...head);

    this.fillTurns(view, cell.turns || []);
    const explained = UNANSWERED.has(cell.status) && Boolean(cell.error_message);
    view.error.hidden = !explained;
    view.error.textContent = view.error.hidden ? "" : cell.error_message;

    if (cell.html) {
      if (view.shownHtml !== cell.html) setSafeHTML(view.answer, cell.html);
      view.shownHtml = cell.html;
      view.answer.classList.remove("mq-plain", "mq-placeholder");
    } else {
      view.shownHtml = null;
      const text = cell.text || "";
      view.answer.classList.toggle("mq-plain", Boolean(text));
      view.answer.classList.toggle("mq-placeholder", !text);
      // The message above says why; "(Failed.)" or "(Skipped…)" would repeat it.
      view.answer.textContent = text || (explained ? "" : PLACEHOLDERS[cell.status] || "");
    }
    view.answer.hidden = !cell.html && !view.answer.textContent;

    const full = this.fullTexts.get(view.key);
    view.capped.replaceChildren();
    if (cell.capped) {
      view.capped.append(el("span", null,
        `Showing ${Math.min(cell.length || 0, this.run.display_cap || 0).toLocaleString()} of ${Number(cell.length || 0).toLocaleString()} characters. `));
      if (full === undefined) {
        const btn = button("Show full text", "", "Show the full text of this answer", () => this.send({ kind: "show_full", key: view.key }, btn));
        view.capped.append(btn);
      } else {
        view.capped.append(button("Hide full text", "", "Hide the full text", () => {
          this.fullTexts.delete(view.key);
          this.asked.delete(view.key);
          this.fillCell(view);
        }));
      }
    }
    view.capped.hidden = !cell.capped;
    view.full.hidden = full === undefined;
    view.full.textContent = full === undefined ? "" : full;
    this.fillActions(view, cell);
  }

  // Answers to the earlier turns of a multi-turn item, folded; redrawn only when
  // they change, so a rater's open <details> stays open while others stream.
  fillTurns(view, turns) {
    const shown = JSON.stringify(turns);
    if (view.shownTurns === shown) return;
    view.shownTurns = shown;
    view.turns.replaceChildren(...turns.map((text, i) => {
      const details = el("details", "mq-turn-answer");
      details.append(el("summary", null, `Turn ${i + 1} answer`), el("div", "mq-turn", text));
      return details;
    }));
    if (turns.length) view.turns.append(el("div", "mq-turn-label", `Turn ${turns.length + 1} answer`));
    view.turns.hidden = !turns.length;
  }

  actions(key, view) {
    const parts = { node: el("div", "mq-actions") };
    const send = (content, control) => {
      // Pressing the thumb or star that is already on stores nothing new.
      const feedback = (this.cells[key] || {}).feedback || {};
      if (content.type !== "comment" && feedback[content.type] === content.value) return;
      this.send({ kind: "feedback", key, ...content }, control);
    };
    parts.up = button("▲", "mq-thumb", "Thumbs up", () => send({ type: "thumbs", value: 1 }, parts.up));
    parts.down = button("▼", "mq-thumb", "Thumbs down", () => send({ type: "thumbs", value: -1 }, parts.down));
    parts.rating = el("span", "mq-rating");
    parts.rating.setAttribute("role", "group");
    parts.rating.setAttribute("aria-label", "Rating from 1 to 5");
    parts.stars = [1, 2, 3, 4, 5].map((value) => {
      const star = button(String(value), "mq-star", `Rate ${value} of 5`, () => send({ type: "rating", value }, star));
      parts.rating.append(star);
      return star;
    });
    parts.commentBtn = button("Comment", "mq-comment-toggle", "Write a comment on this answer", () => {
      if (this.openComments.has(key)) this.openComments.delete(key);
      else this.openComments.add(key);
      this.fillActions(view, this.cells[key] || {});
      if (this.openComments.has(key)) parts.textarea.focus();
    });
    parts.form = el("div", "mq-comment");
    parts.textarea = el("textarea", "mq-textarea");
    parts.textarea.rows = 2;
    parts.textarea.setAttribute("aria-label", "Comment on this answer (Ctrl+Enter saves)");
    parts.textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        parts.save.click();
      }
    });
    parts.save = button("Save comment", "", "Save the comment", () =>
      send({ type: "comment", value: parts.textarea.value }, parts.save));
    parts.form.append(parts.textarea, parts.save);
    parts.best = button("★ Best", "mq-best", "Pick this answer as the best for its item", () =>
      this.send({ kind: "pick", key }, parts.best));
    parts.node.append(parts.up, parts.down, parts.rating, parts.commentBtn, parts.best, parts.form);
    return parts;
  }

  fillActions(view, cell) {
    const parts = view.actions;
    const feedback = cell.feedback || {};
    const ready = ENDED.has(cell.status);
    const press = (node, on) => {
      node.setAttribute("aria-pressed", on ? "true" : "false");
      node.classList.toggle("mq-on", Boolean(on));
      node.disabled = !ready;
    };
    press(parts.up, feedback.thumbs === 1);
    press(parts.down, feedback.thumbs === -1);
    parts.stars.forEach((star, i) => press(star, feedback.rating === i + 1));
    const decisions = this.run.decisions || {};
    press(parts.best, decisions[String(cell.item)] === view.key);
    parts.commentBtn.disabled = !ready;
    const open = this.openComments.has(view.key);
    parts.commentBtn.setAttribute("aria-expanded", open ? "true" : "false");
    parts.commentBtn.textContent = feedback.comment ? "Comment ✓" : "Comment";
    parts.form.hidden = !open;
    if (document.activeElement !== parts.textarea && !parts.textarea.dataset.edited) {
      parts.textarea.value = feedback.comment || "";
    }
    if (!parts.textarea.dataset.bound) {
      parts.textarea.dataset.bound = "1";
      parts.textarea.addEventListener("input", () => { parts.textarea.dataset.edited = "1"; });
      parts.save.addEventListener("click", () => { delete parts.textarea.dataset.edited; });
    }
  }

  refreshAllCells() {
    for (const view of this.cellViews.values()) this.fillCell(view);
  }
}

function render({ model, el: root }) {
  const view = new ComparisonView(model, root);
  const onState = () => view.onModelChange();
  const onTick = () => view.onTick();
  const onPageSize = () => view.drawBody();
  model.on("change:cells", onState);
  model.on("change:run", onState);
  model.on("change:items", onState);
  model.on("change:page_size", onPageSize);
  model.on("change:_mq_tick", onTick);
  const timer = setInterval(() => {
    if (!view.run.finished) view.drawStats();
  }, 1000);
  return () => {
    clearInterval(timer);
    model.off("change:cells", onState);
    model.off("change:run", onState);
    model.off("change:items", onState);
    model.off("change:page_size", onPageSize);
    model.off("change:_mq_tick", onTick);
  };
}

export default { initialize, render };
