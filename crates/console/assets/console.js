// berth console: the little script the server-rendered pages use. Confirmation of
// destructive forms, the groups table's refresh, live logs, metric charts and the terminal.
// Loaded from /console/assets (the Content-Security-Policy allows no inline script).
"use strict";

(function () {
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  // POST a small form to the console; answers the parsed JSON or throws with the API's message.
  async function post(url, fields) {
    const body = new URLSearchParams(fields);
    body.set("csrf", csrf());
    const r = await fetch(url, { method: "POST", body, credentials: "same-origin" });
    const v = await r.json().catch(() => ({ Code: String(r.status), Message: r.statusText }));
    if (!r.ok) throw new Error((v.Code || r.status) + " " + (v.Message || ""));
    return v;
  }

  // Forms that destroy something ask first.
  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (e) => {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });

  // The groups table: its rows fetched again every 3 s while the page is visible.
  const rows = document.getElementById("group-rows");
  if (rows && rows.dataset.poll) {
    setInterval(async () => {
      if (document.hidden) return;
      try {
        const r = await fetch(rows.dataset.poll, { credentials: "same-origin" });
        if (r.ok) rows.innerHTML = await r.text();
      } catch (_) { /* the next poll tries again */ }
    }, 3000);
  }

  // A group's status, containers and events, fetched again every 5 s.
  const groupState = document.getElementById("group-state");
  if (groupState && groupState.dataset.poll) {
    setInterval(async () => {
      if (document.hidden) return;
      try {
        const r = await fetch(groupState.dataset.poll, { credentials: "same-origin" });
        if (r.ok) groupState.innerHTML = await r.text();
      } catch (_) { /* the next poll tries again */ }
    }, 5000);
  }

  // Logs that follow live: the API's log stream, read as it comes.
  const logForm = document.getElementById("log-form");
  const logOut = document.getElementById("log");
  let logAbort = null;
  // A container not started yet has no log: try again a while before giving up.
  let attempts = 0;
  async function follow() {
    if (logAbort) logAbort.abort();
    const abort = new AbortController();
    logAbort = abort;
    const container = document.getElementById("log-container").value;
    const prev = document.getElementById("previous-logs");
    if (prev) prev.href = prev.href.replace(/container=[^&]*/, "container=" + encodeURIComponent(container));
    logOut.textContent = "";
    try {
      const { url } = await post(logForm.dataset.stream, { container });
      const r = await fetch(url, { signal: abort.signal });
      if (!r.ok) throw new Error(await r.text());
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        attempts = 0;
        logOut.textContent += dec.decode(value, { stream: true });
        if (logOut.textContent.length > 1000000) logOut.textContent = logOut.textContent.slice(-500000);
        logOut.scrollTop = logOut.scrollHeight;
      }
      logOut.dataset.ended = "true";
    } catch (e) {
      if (e.name === "AbortError") return;
      logOut.textContent += "\n[" + e.message + "]";
      if (++attempts < 30 && logAbort === abort) setTimeout(() => { if (logAbort === abort) follow(); }, 2000);
    }
  }
  if (logForm) {
    logForm.addEventListener("submit", (e) => { e.preventDefault(); attempts = 0; follow(); });
    follow();
  }

  // Charts of CPU, memory and network, drawn again every 15 s.
  const charts = document.getElementById("charts");
  const plots = {};
  function draw(id, label, xs, series) {
    const el = document.getElementById(id);
    const width = Math.max(260, el.clientWidth || 300);
    const opts = {
      width, height: 160,
      series: [{}].concat(series.map((s, i) => ({ label: s[0], stroke: ["#0b5cad", "#b3541e"][i], width: 2 }))),
      axes: [{}, { size: 60 }],
    };
    const data = [xs].concat(series.map((s) => s[1]));
    if (plots[id]) { plots[id].setData(data); return; }
    el.textContent = "";
    plots[id] = new uPlot(opts, data, el);
    el.dataset.drawn = "true";
  }
  async function loadCharts() {
    try {
      const r = await fetch(charts.dataset.src, { credentials: "same-origin" });
      if (!r.ok) return;
      const m = await r.json();
      draw("chart-cpu", "CPU", m.t, [["millicores", m.cpu]]);
      draw("chart-mem", "Memory", m.t, [["MiB", m.mem]]);
      draw("chart-net", "Network", m.t, [["received", m.rx], ["sent", m.tx]]);
    } catch (_) { /* drawn at the next try */ }
  }
  if (charts && window.uPlot) {
    loadCharts();
    setInterval(() => { if (!document.hidden) loadCharts(); }, 15000);
  }

  // The usage chart: amount per day.
  const usage = document.getElementById("chart-usage");
  if (usage && window.uPlot) {
    const days = JSON.parse(usage.dataset.days || "[]");
    const plot = new uPlot({
      width: Math.max(260, usage.clientWidth || 300), height: 180,
      series: [{}, { label: "amount", stroke: "#0b5cad", width: 2, fill: "rgba(11,92,173,0.15)", points: { size: 8 } }],
      axes: [{}, { size: 90, values: (u, vals) => vals.map((v) => (v === 0 ? "0" : Number(v.toPrecision(3)).toString())) }],
    }, [days.map((d) => d[0]), days.map((d) => d[1])], usage);
    // One day alone gets a day either side, not years.
    if (days.length === 1) plot.setScale("x", { min: days[0][0] - 86400, max: days[0][0] + 86400 });
    usage.dataset.drawn = "true";
  }

  // The terminal: xterm.js over the exec WebSocket (channel byte 0 stdin, 1 stdout,
  // 2 stderr, 3 status, 4 resize).
  const termForm = document.getElementById("term-form");
  if (termForm && window.Terminal) {
    let ws = null;
    let term = null;
    termForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (ws) ws.close();
      const el = document.getElementById("terminal");
      el.textContent = "";
      term = new Terminal({ convertEol: false, cursorBlink: true, rows: 20 });
      term.open(el);
      let url;
      try {
        ({ url } = await post(termForm.dataset.exec, {
          container: document.getElementById("term-container").value,
          command: document.getElementById("term-command").value,
        }));
      } catch (err) {
        term.write("\r\n[" + err.message + "]\r\n");
        return;
      }
      ws = new WebSocket(url, ["v4.channel.k8s.io"]);
      ws.binaryType = "arraybuffer";
      const enc = new TextEncoder();
      const send = (ch, bytes) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        const m = new Uint8Array(bytes.length + 1);
        m[0] = ch; m.set(bytes, 1); ws.send(m);
      };
      const resize = () => send(4, enc.encode(JSON.stringify({ Width: term.cols, Height: term.rows })));
      ws.onopen = () => { el.dataset.open = "true"; resize(); term.focus(); };
      ws.onmessage = (m) => {
        const b = new Uint8Array(m.data);
        if (b[0] === 1 || b[0] === 2) term.write(b.subarray(1));
        if (b[0] === 3) term.write("\r\n[" + new TextDecoder().decode(b.subarray(1)) + "]\r\n");
      };
      ws.onclose = () => { term.write("\r\n[session closed]\r\n"); };
      term.onData((d) => send(0, enc.encode(d)));
      term.onResize(resize);
    });
  }
})();
