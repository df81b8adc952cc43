// The labelling page. Generated text is only ever set with textContent (never parsed as HTML).
"use strict";
(function () {
  const KEYS = { a: "A", "1": "A", b: "B", "2": "B", t: "tie", "3": "tie", s: "skip", "4": "skip" };
  const params = new URLSearchParams(window.location.search);
  const annotator = params.get("annotator") || "default";
  let current = null;
  let busy = false;

  function $(id) { return document.getElementById(id); }
  function setBusy(value) {
    busy = value;
    document.querySelectorAll("button[data-choice]").forEach((b) => { b.disabled = value || !current; });
  }
  function showProgress(p) {
    $("progress").textContent = p.answered + " / " + p.total + " answered (" + p.pending + " left)";
    $("progress").dataset.answered = String(p.answered);
  }
  function show(data) {
    showProgress(data.progress);
    current = data.pair;
    document.body.dataset.pairId = current ? current.pair_id : "";
    if (!current) {
      $("prompt").textContent = "All pairs are answered. Thank you! You can close this page.";
      $("cand-a").textContent = "";
      $("cand-b").textContent = "";
    } else {
      $("prompt").textContent = current.display || current.prompt;
      $("cand-a").textContent = current.a;
      $("cand-b").textContent = current.b;
    }
    setBusy(false);
  }
  async function call(path, body) {
    const opts = body ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) } : {};
    const resp = await fetch(path, opts);
    const data = await resp.json();
    if (!resp.ok) { throw new Error(data.error || resp.statusText); }
    return data;
  }
  async function load() {
    try { show(await call("/api/next?annotator=" + encodeURIComponent(annotator))); $("status").textContent = ""; }
    catch (err) { $("status").textContent = "Could not reach the server (" + err.message + "); retrying…"; setTimeout(load, 2000); }
  }
  async function answer(choice) {
    if (busy || !current) { return; }
    setBusy(true);
    const pairId = current.pair_id;
    try {
      const data = await call("/api/answer", { pair_id: pairId, choice: choice, annotator: annotator });
      $("status").textContent = (data.stored ? "Saved: " : "Already answered: ") + choice;
      show(data);
    } catch (err) {
      $("status").textContent = "Not saved (" + err.message + "); try again.";
      setBusy(false);
    }
  }
  document.querySelectorAll("button[data-choice]").forEach((b) => {
    b.addEventListener("click", () => answer(b.dataset.choice));
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    const choice = KEYS[ev.key.toLowerCase()];
    if (choice) { ev.preventDefault(); answer(choice); }
  });
  load();
})();
