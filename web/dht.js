// The DHT view (/dht): renders /dht.json (app.js polls it).
"use strict";

function renderDht(v) {
  setText("keys", fmtInt(v.total_keys));
  setText("reporting", fmtInt(v.reporting_peers));
  setText("generated", fmtTime(v.generated_at));
  const cut = document.getElementById("truncated");
  cut.hidden = !v.truncated;
  cut.textContent = v.truncated
    ? "Showing " + fmtInt(v.keys.length) + " of " + fmtInt(v.total_keys) +
      " keys: the view or a peer's answer was truncated."
    : "";
  replaceChildren("table", table([
    ["Content key", (k) => k.content_key, "id"],
    ["Providers", (k) => fmtInt(k.providers), "num"],
    ["Reported by", (k) => fmtInt(k.reported_by), "num"],
  ], v.keys));
  return v.keys.length > 0;
}

poll("/dht.json", renderDht);
