// Blind pairwise voting view for maquina_nb's PairwiseWidget.
//
// The kernel sends one anonymized pair at a time (`current`), with the answers
// already rendered and sanitized there; model names reach the page only after
// every pair is voted (`summary`). Votes go back as custom messages that carry
// the position they were cast at, so a double click cannot vote twice.

const CHOICES = [
  { winner: "left", label: "Left is better", key: "1", hint: "1 or ←" },
  { winner: "tie", label: "Tie", key: "2", hint: "2 or ↓" },
  { winner: "right", label: "Right is better", key: "3", hint: "3 or →" },
];
const KEYS = { ArrowLeft: "left", ArrowDown: "tie", ArrowRight: "right", 1: "left", 2: "tie", 3: "right" };

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function answerPanel(title, html) {
  const panel = element("section", "mqp-answer");
  panel.setAttribute("aria-label", title);
  panel.append(element("h4", "mqp-answer-title", title));
  const body = element("div", "mqp-answer-body");
  // The kernel rendered this with raw HTML disabled and sanitized it (render.py).
  body.innerHTML = html;
  panel.append(body);
  return panel;
}

function drawPair(root, model, send) {
  const current = model.get("current");
  const position = model.get("position");
  const total = model.get("total");

  const header = element("div", "mqp-header");
  header.append(element("span", "mqp-title", model.get("title") || "Blind A/B vote"));
  header.append(element("span", "mqp-progress", `Pair ${position + 1} of ${total}`));
  const bar = element("progress", "mqp-bar");
  bar.max = total;
  bar.value = position;
  bar.setAttribute("aria-label", `${position} of ${total} pairs voted`);
  header.append(bar);
  root.append(header);

  const prompt = element("details", "mqp-prompt");
  prompt.open = true;
  prompt.append(element("summary", null, "Request"));
  const promptBody = element("div", "mqp-prompt-body");
  promptBody.innerHTML = current.prompt_html;
  prompt.append(promptBody);
  root.append(prompt);

  const answers = element("div", "mqp-answers");
  answers.append(answerPanel("Left answer", current.left_html));
  answers.append(answerPanel("Right answer", current.right_html));
  root.append(answers);

  const buttons = element("div", "mqp-buttons");
  buttons.setAttribute("role", "group");
  buttons.setAttribute("aria-label", "Which answer is better?");
  for (const choice of CHOICES) {
    const button = element("button", `mqp-vote mqp-vote-${choice.winner}`, choice.label);
    button.type = "button";
    button.title = `${choice.label} (key ${choice.hint})`;
    button.dataset.winner = choice.winner;
    button.addEventListener("click", () => send(choice.winner));
    buttons.append(button);
  }
  const skip = element("button", "mqp-skip", "Skip");
  skip.type = "button";
  skip.addEventListener("click", () => model.send({ type: "skip", position }));
  buttons.append(skip);
  if (position > 0) {
    const undo = element("button", "mqp-undo", "Undo");
    undo.type = "button";
    undo.title = "Take back the last vote (key u)";
    undo.addEventListener("click", () => model.send({ type: "undo", position }));
    buttons.append(undo);
  }
  root.append(buttons);
}

function drawSummary(root, model) {
  const summary = model.get("summary");
  root.append(element("div", "mqp-header mqp-title", model.get("title") || "Blind A/B vote"));
  root.append(element("p", "mqp-done", `All ${model.get("total")} pairs seen. The models were:`));
  const table = element("table", "mqp-summary");
  const head = element("tr");
  for (const name of ["Item", "Left", "Right", "Your vote"]) head.append(element("th", null, name));
  table.append(head);
  for (const row of summary) {
    const line = element("tr");
    line.append(element("td", null, String(row.item_index)));
    line.append(element("td", null, row.left));
    line.append(element("td", null, row.right));
    line.append(element("td", `mqp-winner-${row.winner}`, row.vote));
    table.append(line);
  }
  root.append(table);
}

function render({ model, el }) {
  const root = element("div", "mqp-root");
  root.tabIndex = 0;
  el.append(root);

  const send = (winner) => {
    root.classList.add("mqp-busy");
    model.send({ type: "vote", winner, position: model.get("position") });
  };

  const draw = () => {
    root.replaceChildren();
    root.classList.remove("mqp-busy");
    const error = model.get("error");
    if (error) root.append(element("div", "mqp-error", error));
    if (model.get("revealed")) drawSummary(root, model);
    else if (model.get("total") === 0) root.append(element("p", "mqp-done", "No pairs to vote on."));
    else if (model.get("current")) drawPair(root, model, send);
  };

  const onKey = (event) => {
    if (model.get("revealed") || root.classList.contains("mqp-busy")) return;
    if (event.key === "u" && model.get("position") > 0) {
      event.preventDefault();
      root.classList.add("mqp-busy");
      model.send({ type: "undo", position: model.get("position") });
      return;
    }
    const winner = KEYS[event.key];
    if (winner) {
      event.preventDefault();
      send(winner);
    }
  };

  root.addEventListener("keydown", onKey);
  model.on("change:current", draw);
  model.on("change:revealed", draw);
  model.on("change:error", draw);
  draw();

  return () => {
    root.removeEventListener("keydown", onKey);
    model.off("change:current", draw);
    model.off("change:revealed", draw);
    model.off("change:error", draw);
  };
}

export default { render };
