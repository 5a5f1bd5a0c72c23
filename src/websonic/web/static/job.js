// Follows a job on its page: polls /api/v1/jobs/{id}/log from the last offset until finished.
(function () {
  "use strict";
  const root = document.getElementById("job");
  if (!root || root.dataset.finished === "true") return;
  const id = root.dataset.jobId;
  let offset = Number(root.dataset.logOffset || 0);
  const log = document.getElementById("job-log");
  const status = document.getElementById("job-status");
  const step = document.getElementById("job-step");
  const progress = document.getElementById("job-progress");
  const error = document.getElementById("job-error");

  function show(piece) {
    if (piece.text) {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(document.createTextNode(piece.text));
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    offset = piece.next_offset;
    status.textContent = piece.status;
    step.textContent = piece.step;
    progress.value = piece.progress;
    progress.textContent = Math.round(piece.progress * 100) + "%";
    if (piece.error) {
      error.textContent = piece.error;
      error.hidden = false;
    }
    root.dataset.finished = piece.finished ? "true" : "false";
  }

  async function poll() {
    let delay = 1000;
    try {
      const response = await fetch("/api/v1/jobs/" + id + "/log?offset=" + offset, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const piece = await response.json();
      show(piece);
      if (piece.finished) return;
      if (piece.text) delay = 250;
    } catch (e) {
      delay = 5000;
    }
    window.setTimeout(poll, delay);
  }

  poll();
})();
