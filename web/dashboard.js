// The dashboard (/): renders /stats.json (app.js polls it).
"use strict";

const full = new URLSearchParams(location.search).get("full");
const statsUrl = "/stats.json" + (full ? "?full=" + encodeURIComponent(full) : "");

function renderStats(d) {
  setText("version", "v" + d.version);
  setText("active", fmtInt(d.active_reservations));
  // Only an instance of a cluster reports the cluster's count; the cards above stay its own.
  const clustered = d.cluster_peers !== undefined;
  document.getElementById("cluster-card").hidden = !clustered;
  if (clustered) setText("cluster-peers", fmtInt(d.cluster_peers));
  setText("open", fmtInt(d.open_connections));
  setText("networks-count", fmtInt(d.networks.length));
  setText("uptime", fmtDuration(d.uptime_secs));
  setText("stun", fmtInt(d.stun_requests));
  setText("hp-requests", fmtInt(d.hole_punch_requests));
  setText("hp-results", fmtInt(d.hole_punch_successes) + " / " + fmtInt(d.hole_punch_failures));
  setText("relayed", fmtBytes(d.bytes_relayed));
  replaceChildren("networks", table([
    ["Network", (n) => n.network_id, "id"],
    ["Peers", (n) => fmtInt(n.peers), "num"],
  ], d.networks));
  replaceChildren("peers", table([
    ["Peer", (p) => p.peer_id, "id"],
    ["Network", (p) => p.network_id, "id"],
    ["Via", (p) => el("span", { class: "pill " + (p.via === "direct" ? "direct" : "relay") }, p.via)],
    ["Family", (p) => p.address_family],
    ["Protocol", (p) => p.protocol_version, "num"],
    ["Connected", (p) => fmtDuration(p.connected_secs), "num"],
  ], d.peers));
  document.getElementById("peers-truncated").hidden = !d.peers_truncated;
  document.getElementById("networks-truncated").hidden = !d.networks_truncated;
  return d.active_reservations > 0;
}

poll(statsUrl, renderStats);
