// The bookings calendar (scheduler/views.py bookings_page): vis-timeline (the vendor bundle,
// window.KarimasuTimeline) draws every GPU as a row and the bookings, jobs and maintenance
// windows of /api/v1/calendar/ on it, with a line at "now". A click on a block shows its
// details; dragging across a GPU's row fills the booking form below with that node, GPU and
// time (the server checks it with the booking services, as for any booking). Times are shown
// at the user's time zone's offset (data-utc-offset), as the forms read them. The list view
// (data-live="agenda") stays the view on narrow screens and without script. No inline
// script, no eval: the CSP holds.
(() => {
  "use strict";
  const root = document.getElementById("calendar");
  if (!root || !window.KarimasuTimeline) return;
  const { DataSet, Timeline, moment } = window.KarimasuTimeline;
  const strings = JSON.parse(document.getElementById("calendar-strings").textContent);
  const offset = Number(root.dataset.utcOffset || 0);
  const lang = (root.dataset.lang || "en").startsWith("ja") ? "ja" : "en";
  const SNAP = 30 * 60 * 1000;
  const local = (value) => moment(value).utcOffset(offset);
  const hhmm = (value) => local(value).format("HH:mm");
  const when = (item) => `${local(item.start).format("MM-DD HH:mm")} – ${local(item.end).format("MM-DD HH:mm")}`;

  const groups = new DataSet();
  const items = new DataSet();
  const byId = new Map();
  const details = document.getElementById("calendar-details");

  function label(item) {
    if (item.kind === "maintenance") return `${strings.maintenance}${item.purpose ? ": " + item.purpose : ""}`;
    const what = item.job ? `${strings.job} ${item.job}` : item.kind === "job" || item.kind === "starting" ? strings.job : "";
    return [item.holder, `${hhmm(item.start)}–${hhmm(item.end)}`, `${item.gpus.length} × GPU`, what]
      .filter(Boolean).join(" · ");
  }

  function groupContent(group) {
    const el = document.createElement("span");
    el.dataset.gpu = group.id;
    const strong = document.createElement("strong");
    strong.textContent = group.node;
    el.append(strong, ` GPU ${group.index}`);
    if (!group.healthy || group.cordoned || !group.ready) el.classList.add("unavailable");
    el.title = group.model;
    return el;
  }

  function show(data) {
    const seen = new Set();
    groups.update(data.groups.map((g) => ({ id: g.id, content: groupContent(g) })));
    for (const id of groups.getIds()) if (!data.groups.some((g) => g.id === id)) groups.remove(id);
    byId.clear();
    for (const item of data.items) {
      seen.add(item.id);
      byId.set(item.id, item);
      items.update({
        id: item.id, group: item.group, start: item.start, end: item.end,
        content: label(item), className: `bar ${item.kind}`, title: `${label(item)} (${when(item)})`,
      });
    }
    for (const id of items.getIds()) if (id !== "draft" && !seen.has(id)) items.remove(id);
  }

  async function load() {
    const url = new URL(root.dataset.api, window.location.href);
    url.searchParams.set("from", root.dataset.from);
    url.searchParams.set("days", root.dataset.days);
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  function showDetails(item) {
    details.replaceChildren();
    const title = document.createElement("h3");
    title.textContent = item.kind === "maintenance" ? strings.maintenance : `${item.holder}${item.mine ? " (" + strings.your_booking + ")" : ""}`;
    const list = document.createElement("dl");
    const add = (name, value) => {
      if (!value) return;
      const dt = document.createElement("dt"); dt.textContent = name;
      const dd = document.createElement("dd"); dd.textContent = value;
      list.append(dt, dd);
    };
    add(strings.team, item.team);
    add(strings.gpus, `${item.node}${item.gpus.length ? " GPU " + item.gpus.join(", ") : ""}`);
    add(strings.status, item.status);
    add("", when(item));
    add(strings.purpose, item.purpose);
    details.append(title, list);
    if (item.job) {
      const link = document.createElement("a");
      link.href = `/jobs/${item.job}/`;
      link.textContent = strings.open_job;
      details.append(link, " ");
    }
    const close = document.createElement("button");
    close.type = "button"; close.className = "secondary"; close.textContent = strings.close;
    close.addEventListener("click", () => { details.hidden = true; });
    details.append(close);
    details.className = `card cal-details ${item.kind}`;
    details.hidden = false;
  }

  function fillBookForm(group, start, end) {
    const [node, index] = group.split("/");
    const set = (id, value) => { const el = document.getElementById(id); if (el) el.value = value; };
    set("id_book-node", node);
    set("id_book-gpus", index);
    set("id_book-start", local(start).format("YYYY-MM-DDTHH:mm"));
    set("id_book-end", local(end).format("YYYY-MM-DDTHH:mm"));
    const form = document.getElementById("book-form");
    let note = document.getElementById("book-prompt");
    if (!note) {
      note = document.createElement("p");
      note.id = "book-prompt"; note.className = "muted small";
      form.prepend(note);
    }
    note.textContent = strings.book_prompt;
    document.getElementById("book").scrollIntoView({ behavior: "smooth", block: "start" });
    document.getElementById("id_book-purpose")?.focus({ preventScroll: true });
  }

  const start = moment(root.dataset.start);
  const end = moment(root.dataset.end);
  moment.locale(lang);
  const timeline = new Timeline(root, items, groups, {
    start: start.toDate(), end: end.toDate(), min: start.toDate(), max: end.toDate(),
    moveable: false, zoomable: false, stack: false, selectable: true, editable: false,
    showCurrentTime: true, orientation: { axis: "top" }, locale: lang,
    moment: (date) => moment(date).utcOffset(offset), groupOrder: "id",
    margin: { item: { horizontal: 0, vertical: 4 } },
    tooltip: { followMouse: false, overflowMethod: "cap" },
  });

  let drag = null;
  const snap = (date) => new Date(Math.round(date.valueOf() / SNAP) * SNAP);
  timeline.on("mouseDown", (props) => {
    if (props.what !== "background" || props.group == null || !props.time) return;
    drag = { group: props.group, from: snap(props.time), to: snap(props.time) };
  });
  timeline.on("mouseMove", (props) => {
    if (!drag || !props.time) return;
    drag.to = snap(props.time);
    const [a, b] = drag.from <= drag.to ? [drag.from, drag.to] : [drag.to, drag.from];
    if (b - a >= SNAP) items.update({ id: "draft", group: drag.group, start: a, end: b, content: "", className: "bar draft" });
  });
  timeline.on("mouseUp", () => {
    if (!drag) return;
    let [a, b] = drag.from <= drag.to ? [drag.from, drag.to] : [drag.to, drag.from];
    if (b - a < SNAP) b = new Date(a.valueOf() + 2 * SNAP);  // a click books an hour
    items.update({ id: "draft", group: drag.group, start: a, end: b, content: "", className: "bar draft" });
    fillBookForm(drag.group, a, b);
    drag = null;
  });
  timeline.on("click", (props) => {
    if (props.item && byId.has(props.item)) showDetails(byId.get(props.item));
  });

  async function refresh() {
    try {
      show(await load());
      root.closest("section").classList.add("has-timeline");
    } catch (_error) {
      root.closest("section").classList.remove("has-timeline");
      root.dataset.failed = strings.loading_failed;
    }
  }
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 5000);
})();
