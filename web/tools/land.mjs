// Regenerates web/land.svg, the coarse land outline /map draws peers on, from Natural Earth's
// 1:110m land polygons (public domain) as the npm package world-atlas ships them (TopoJSON).
// Not part of the build: the SVG it writes is committed. Run from the repository root:
//   npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
//   node web/tools/land.mjs package/land-110m.json > web/land.svg
// The projection is equirectangular in the SVG's own units: x = longitude, y = -latitude, so
// the page can place 5-degree cells with the same numbers. Points are rounded to STEP degrees
// and rings that shrink below three points are dropped, which keeps the file small.
// Antarctica's ring runs along the map's bottom edge and needs no special case.
import { readFileSync } from "node:fs";

const STEP = 0.5;
const topo = JSON.parse(readFileSync(process.argv[2], "utf8"));
const [sx, sy] = topo.transform.scale;
const [tx, ty] = topo.transform.translate;

// Arcs are delta-encoded quantized positions; decode each to degrees once.
const arcs = topo.arcs.map((arc) => {
  let x = 0, y = 0;
  return arc.map(([dx, dy]) => {
    x += dx;
    y += dy;
    return [x * sx + tx, y * sy + ty];
  });
});

// A ring is a list of arc indexes; ~i means arc i reversed. Consecutive arcs share an end point.
function ring(indexes) {
  const points = [];
  for (const i of indexes) {
    const arc = i < 0 ? arcs[~i].slice().reverse() : arcs[i];
    points.push(...(points.length ? arc.slice(1) : arc));
  }
  return points;
}

const round = (v) => Math.round(v / STEP) * STEP;
const paths = [];
const polygons = [];
for (const g of topo.objects.land.geometries) {
  if (g.type === "Polygon") polygons.push(g.arcs);
  else if (g.type === "MultiPolygon") polygons.push(...g.arcs);
}
// A ring that crosses the antimeridian is unwrapped (longitudes kept continuous, past +-180) and
// drawn again shifted by 360 degrees, so each side shows its part and no edge spans the map.
const draw = (pts, shift) => "M" + pts.map((p) => (p[0] + shift) + " " + p[1]).join("L") + "Z";
for (const polygon of polygons) {
  for (const r of polygon) {
    const pts = [];
    let prev = null;
    for (const [lon0, lat] of ring(r)) {
      let lon = lon0;
      if (prev !== null) {
        while (lon - prev > 180) lon -= 360;
        while (prev - lon > 180) lon += 360;
      }
      prev = lon;
      const p = [round(lon), round(-lat)];
      const last = pts[pts.length - 1];
      if (!last || last[0] !== p[0] || last[1] !== p[1]) pts.push(p);
    }
    if (pts.length < 4) continue;
    paths.push(draw(pts, 0));
    const lons = pts.map((p) => p[0]);
    if (Math.min(...lons) < -180) paths.push(draw(pts, 360));
    if (Math.max(...lons) > 180) paths.push(draw(pts, -360));
  }
}

process.stdout.write(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="-180 -90 360 180" preserveAspectRatio="none">' +
  "<!-- Land: Natural Earth 1:110m (public domain), rounded to " + STEP + " degrees. -->" +
  '<path fill="#2a2140" stroke="#4b3a6e" stroke-width="0.3" fill-rule="evenodd" d="' +
  paths.join("") + '"/></svg>\n');
