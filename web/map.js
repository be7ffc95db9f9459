// The peer map (/map): renders /map.json (app.js polls it) as circles on the land outline, one
// per 5-degree cell, sized by the log of its peer count, and as a table.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function fmtDeg(v, pos, neg) {
  return Math.abs(v).toFixed(1) + "°" + (v >= 0 ? pos : neg);
}

function renderMap(d) {
  setText("total", fmtInt(d.total_peers));
  setText("located", fmtInt(d.located_peers));
  setText("unknown", fmtInt(d.unknown_peers));
  setText("regions", fmtInt(d.cells.length));
  const marks = d.cells.map((c) => {
    const circle = document.createElementNS(SVG_NS, "circle");
    circle.setAttribute("cx", String(c.lon));
    circle.setAttribute("cy", String(-c.lat));
    circle.setAttribute("r", String(1.2 + Math.log2(c.count + 1) * 0.9));
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = c.count + (c.count === 1 ? " peer" : " peers") + " near " +
      fmtDeg(c.lat, "N", "S") + " " + fmtDeg(c.lon, "E", "W");
    circle.append(title);
    return circle;
  });
  document.getElementById("cells").replaceChildren(...marks);
  replaceChildren("table", table([
    ["Latitude", (c) => fmtDeg(c.lat, "N", "S"), "num"],
    ["Longitude", (c) => fmtDeg(c.lon, "E", "W"), "num"],
    ["Peers", (c) => fmtInt(c.count), "num"],
  ], d.cells));
  return d.located_peers > 0;
}

poll("/map.json", renderMap);
