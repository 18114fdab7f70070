// firedamp control room: live updates of the main page (server-sent events from /live) and "x s ago" texts.
// The server draws every fragment (escaped there); this file only puts them in place.
"use strict";

function agoText(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

function refreshAges() {
  for (const el of document.querySelectorAll("[data-ts]")) {
    const ts = el.getAttribute("data-ts");
    if (ts && ts !== "—") el.textContent = agoText(ts);
  }
}

function replace(id, html) {
  const old = document.getElementById(id);
  if (!old) return false;
  old.outerHTML = html;
  return true;
}

async function resync() {
  const resp = await fetch(location.pathname + location.search, {credentials: "same-origin"});
  if (resp.redirected || !resp.ok) { location.reload(); return; }
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  for (const id of ["summary", "alerts", "boards"]) {
    const fresh = doc.getElementById(id);
    if (fresh) replace(id, fresh.outerHTML);
  }
  document.body.dataset.synced = String(Date.now());
}

function live() {
  const status = document.getElementById("live-status");
  const source = new EventSource("/live");
  const show = (text, cls) => { if (status) { status.textContent = text; status.className = cls; } };
  source.addEventListener("hello", () => show("live", "live-on"));
  source.addEventListener("alerts", (e) => {
    const d = JSON.parse(e.data);
    // keep what an operator is typing in a note: redraw only when no note field has the focus
    const typing = document.activeElement && document.activeElement.name === "note";
    if (!typing) replace("alerts", d.html); else setTimeout(resync, 3000);
    replace("summary", d.summary);
    document.body.dataset.alertsUpdated = String(Date.now());
    refreshAges();
  });
  source.addEventListener("boards", (e) => {
    const d = JSON.parse(e.data);
    let missing = false;
    for (const row of d.rows) if (!replace(row.id, row.html)) missing = true;
    replace("summary", d.summary);
    if (missing) resync();
    refreshAges();
  });
  source.addEventListener("resync", () => resync());
  source.onerror = () => show("connection lost: retrying", "live-off");
}

document.addEventListener("DOMContentLoaded", () => {
  setInterval(refreshAges, 5000);
  if (document.body.dataset.page === "overview") live();
});
