// Live pages (see portal/live.py): every element marked data-live="name" is refreshed by
// polling the page's own URL with ?live=1, which answers {"regions": {name: {html, v}},
// "stop"}. A region is replaced only when its version v changes. Polling pauses while the
// tab is hidden, backs off on errors and ends when the server says nothing will change.
// The job page's log (#log) opens at its last lines, loads earlier ones on demand and
// follows the job while it runs. No inline script, no eval: the CSP holds.
(() => {
  "use strict";

  function liveUrl(extra) {
    const url = new URL(window.location.href);
    url.hash = "";
    for (const [key, value] of Object.entries(extra)) url.searchParams.set(key, value);
    return url.toString();
  }

  function poller(fetchOnce, every) {
    let delay = every;
    let stopped = false;
    let timer = null;
    async function tick() {
      timer = null;
      if (stopped) return;
      if (document.hidden) { schedule(); return; }
      try {
        stopped = (await fetchOnce()) === true;
        delay = every;
      } catch (_error) {
        delay = Math.min(delay * 2, 60000);
      }
      schedule();
    }
    function schedule() { if (!stopped && timer === null) timer = setTimeout(tick, delay); }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer !== null) { clearTimeout(timer); timer = null; tick(); }
    });
    schedule();
  }

  async function getJson(url) {
    const response = await fetch(url, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  function startRegions() {
    const regions = document.querySelectorAll("[data-live]");
    if (regions.length === 0) return;
    let every = 5000;
    for (const region of regions) {
      const asked = Number(region.getAttribute("data-live-every"));
      if (asked > 0) every = Math.min(every, asked);
    }
    poller(async () => {
      const data = await getJson(liveUrl({ live: "1" }));
      for (const [name, region] of Object.entries(data.regions || {})) {
        const element = document.querySelector(`[data-live="${CSS.escape(name)}"]`);
        if (!element) continue;
        if (element.getAttribute("data-live-v") === region.v) continue;
        element.innerHTML = region.html;
        element.setAttribute("data-live-v", region.v);
      }
      return data.stop === true;
    }, every);
  }

  function startLog() {
    const box = document.getElementById("log");
    if (!box) return;
    const pre = document.getElementById("log-text");
    const note = document.getElementById("log-note");
    const earlier = document.getElementById("log-earlier");
    let lines = Number(box.getAttribute("data-lines")) || 200;
    const atBottom = () => pre.scrollHeight - pre.scrollTop - pre.clientHeight < 4;
    const toBottom = () => { pre.scrollTop = pre.scrollHeight; };

    function show(data, keep) {
      const hasText = !data.note;
      note.hidden = hasText;
      note.textContent = data.note || "";
      pre.hidden = !hasText;
      earlier.hidden = !data.more;
      if (!hasText) return;
      if (pre.textContent === data.text) return;
      const follow = atBottom();
      const fromBottom = pre.scrollHeight - pre.scrollTop;
      pre.textContent = data.text;
      if (keep) pre.scrollTop = pre.scrollHeight - fromBottom;
      else if (follow) toBottom();
    }

    async function load(keep) {
      const url = new URL(box.getAttribute("data-log-url"), window.location.href);
      url.searchParams.set("lines", String(lines));
      const data = await getJson(url.toString());
      show(data, keep);
      return data.done === true;
    }

    toBottom();  // the log opens at its newest lines
    earlier.addEventListener("click", () => {
      lines = Math.min(lines * 2, 20000);
      load(true).catch(() => {});
    });
    if (box.getAttribute("data-follow") === "1") poller(() => load(false), 3000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    startRegions();
    startLog();
  });
})();
