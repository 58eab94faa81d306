// The clinician's feedback on each answer: agree, or correct to another class, with an optional reason.
// Keys: A agrees; 1, 2, ... correct to the numbered class. Idle when the service gives no prediction_id.
// The clinician page asks after each answer of /predict; the live page asks once per procedure, through
// window.ProctoFeedback.ask(procedure, after) when the stream stops.
(() => {
  const F = {{ {
    "ask": _("Do you agree with the model?"),
    "agree": _("Agree"),
    "correct": _("Correct to {class}"),
    "reason": _("Reason (optional)"),
    "other": _("Other (describe)"),
    "details": _("Details"),
    "sent_agree": _("Recorded: you agreed."),
    "sent_correct": _("Recorded: corrected to {class}."),
    "failed": _("Feedback not recorded: {reason}"),
    "keys": _("Keys: A agree, 1-9 correct to a class."),
    "procedure": _("The model's answer for the whole procedure: {class}"),
    "reasons": [_("Lesion missed by the model"), _("False alarm by the model"), _("Poor image quality"),
                _("Clinical context"), _("Other")],
  }|tojson }};
  const NAMES = {{ class_labels|tojson }};
  const shown = name => NAMES[name] || name;
  let current = null, panel = null;
  const asked = new Set();

  function csrf() {
    const match = document.cookie.match(/(?:^|;\s*)csrf_token=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function build(result, after) {
    if (panel) panel.remove();
    panel = document.createElement("section");
    panel.id = "feedback"; panel.setAttribute("aria-label", F.ask);
    panel.style.cssText = "margin-top:1rem;padding:0.8rem;border:1px solid #c6d0dc;border-radius:8px";
    if (result.unit === "procedure") {
      const answer = document.createElement("p");
      answer.id = "feedback-answer"; answer.dataset.class = result.predicted;
      answer.textContent = F.procedure.replaceAll("{class}", shown(result.predicted)); panel.append(answer);
    }
    const title = document.createElement("p"); title.textContent = F.ask; panel.append(title);
    const buttons = document.createElement("div");
    const agree = document.createElement("button");
    agree.type = "button"; agree.id = "feedback-agree"; agree.textContent = F.agree + " (A)";
    agree.addEventListener("click", () => send("agree", null));
    buttons.append(agree);
    Object.keys(result.probabilities).filter(name => name !== result.predicted).forEach((name, index) => {
      const button = document.createElement("button");
      button.type = "button"; button.className = "feedback-correct"; button.dataset.class = name;
      button.textContent = F.correct.replaceAll("{class}", shown(name)) + " (" + (index + 1) + ")";
      button.style.marginLeft = "0.5rem";
      button.addEventListener("click", () => send("disagree", name));
      buttons.append(button);
    });
    panel.append(buttons);
    const reason = document.createElement("select"); reason.id = "feedback-reason";
    reason.setAttribute("aria-label", F.reason);
    reason.append(new Option(F.reason, ""));
    F.reasons.forEach(text => reason.append(new Option(text, text)));
    const details = document.createElement("input"); details.id = "feedback-details"; details.maxLength = 300;
    details.placeholder = F.details; details.setAttribute("aria-label", F.details); details.style.marginLeft = "0.5rem";
    const line = document.createElement("p"); line.append(reason, details); panel.append(line);
    const note = document.createElement("p"); note.className = "note"; note.textContent = F.keys; panel.append(note);
    const outcome = document.createElement("p"); outcome.id = "feedback-status"; outcome.setAttribute("role", "status");
    panel.append(outcome);
    (after || document.querySelector(".row") || document.body).after(panel);
  }

  // The live page: once per procedure (an id already asked about is never asked again), and only for a recorded
  // procedure whose answer names a class.
  window.ProctoFeedback = {
    ask(procedure, after) {
      if (!procedure || !procedure.prediction_id || !procedure.predicted) return false;
      if (asked.has(procedure.prediction_id)) return false;
      asked.add(procedure.prediction_id);
      current = { ...procedure, unit: "procedure" }; build(current, after);
      return true;
    },
    // A new stream: the last procedure's panel goes, so its keys cannot answer for it by mistake.
    dismiss() {
      if (panel) panel.remove();
      panel = null; current = null;
    },
  };

  async function send(verdict, label) {
    if (!current) return;
    const outcome = document.getElementById("feedback-status");
    const reason = [document.getElementById("feedback-reason").value, document.getElementById("feedback-details").value]
      .filter(Boolean).join(": ");
    const headers = { "Content-Type": "application/json" };
    const token = document.getElementById("token"); if (token && token.value) headers["Authorization"] = "Bearer " + token.value;
    const csrfToken = csrf(); if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
    const body = { prediction_id: current.prediction_id, verdict };
    if (label) body.label = label;
    if (reason) body.reason = reason;
    try {
      const response = await originalFetch("feedback", { method: "POST", headers, body: JSON.stringify(body) });
      const answer = await response.json();
      if (!response.ok) { outcome.textContent = F.failed.replaceAll("{reason}", answer.detail || response.statusText); return; }
      outcome.textContent = verdict === "agree" ? F.sent_agree : F.sent_correct.replaceAll("{class}", shown(label));
    } catch (failure) { outcome.textContent = F.failed.replaceAll("{reason}", failure); }
  }

  document.addEventListener("keydown", event => {
    if (!current || !panel || event.ctrlKey || event.metaKey || event.altKey) return;
    if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    if (event.key === "a" || event.key === "A") { event.preventDefault(); send("agree", null); return; }
    const buttons = panel.querySelectorAll(".feedback-correct"), index = Number(event.key) - 1;
    if (index >= 0 && index < buttons.length) { event.preventDefault(); send("disagree", buttons[index].dataset.class); }
  });

  const originalFetch = window.fetch.bind(window);
  window.fetch = async (resource, options) => {
    const response = await originalFetch(resource, options);
    if (/(^|\/)predict(\?|$)/.test(String(resource)) && response.ok) {
      response.clone().json().then(result => {  // a withheld answer shows no class, so there is nothing to agree with
        if (result && result.prediction_id && result.probabilities) { current = result; build(result); }
      }).catch(() => {});
    }
    return response;
  };
})();
