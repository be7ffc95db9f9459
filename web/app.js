// dig-relay operator pages: fetch a JSON document every 5 s and hand it to the page's render
// function, keeping <body data-state> on one of loading, error, empty or success. Everything a
// peer chose (ids, network names, content keys) is put into the page as text nodes only.
"use strict";

const REFRESH_MS = 5000;
const TIMEOUT_MS = 4000;

// Builds an element; children are nodes or plain values (turned into text, never parsed).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function setText(id, value) {
  document.getElementById(id).textContent = String(value);
}

function replaceChildren(id, ...nodes) {
  document.getElementById(id).replaceChildren(...nodes);
}

function fmtInt(n) {
  return Number(n).toLocaleString("en-US");
}

function fmtDuration(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600);
  const m = Math.floor(secs % 3600 / 60), s = secs % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function fmtTime(unixSecs) {
  return unixSecs ? new Date(unixSecs * 1000).toLocaleTimeString() : "never";
}

// A table with a header row and one row per item; columns are [title, cell(item), className].
function table(columns, items) {
  const head = el("tr", {}, ...columns.map(([title, , cls]) => el("th", cls ? { class: cls } : {}, title)));
  const rows = items.map((item) =>
    el("tr", {}, ...columns.map(([, cell, cls]) => el("td", cls ? { class: cls } : {}, cell(item)))));
  return el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// Polls url forever. render(data) fills the page and returns true when there is something to
// show, false for the empty state. A failed fetch keeps the last data on screen, dimmed, under
// the error banner.
function poll(url, render) {
  document.body.dataset.state = "loading";
  async function once() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch(url, { cache: "no-store", signal: ctl.signal });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      const some = render(data);
      document.body.dataset.state = some ? "success" : "empty";
      setText("updated", "Updated " + new Date().toLocaleTimeString() + " · refreshes every 5 s");
    } catch (e) {
      document.body.dataset.state = "error";
      setText("error-text", "Cannot reach the relay (" + (e.name === "AbortError" ? "timed out" : e.message) +
        "). Retrying every 5 s.");
    } finally {
      clearTimeout(timer);
      setTimeout(once, REFRESH_MS);
    }
  }
  once();
}
