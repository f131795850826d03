// The SQL editor: a CodeMirror editor (frontend/static/vendor/codemirror, see frontend/src/
// editor.js) with the gate's findings as marks as you type, catalog autocomplete, tabs kept
// in localStorage, run, acknowledge or override, poll, cancel, page, chart (Chart.js, loaded
// on first use) and download. Plain browser JavaScript over the REST API (/api/v1/...), with
// the page's session and CSRF token; every label comes translated from #sql-editor-config.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("sql-editor-config").textContent);
  const L = config.labels;
  const $ = (id) => document.getElementById(id);
  const warehouse = $("warehouse");
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const ACTIVE = ["queued", "running"];
  const TABS_KEY = "karimasu.sql.tabs." + config.username;
  const state = { seq: 0, timer: null, query: null, poll: null, page: 1, findings: [], catalogs: {} };

  function fmt(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  }

  function number(value) {
    return Number(value).toLocaleString(document.documentElement.lang || undefined);
  }

  function bytes(value) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let size = Number(value);
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return (unit === 0 ? String(size) : size.toFixed(1)) + " " + units[unit];
  }

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    });
    children.flat().forEach((child) => {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    });
    return node;
  }

  async function api(method, url, body) {
    const options = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { status: 0, body: { error: { code: "network", message: String(error) } } };
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = { error: { code: "bad_response", message: response.statusText } };
    }
    return { status: response.status, body: payload };
  }

  function errorText(answer) {
    return answer.body && answer.body.error ? answer.body.error.message : L.failed;
  }

  // --- the code editor ----------------------------------------------------------------------

  const textarea = $("sql");
  const editor = window.KarimasuEditor.create({
    parent: $("sql-editor"),
    doc: textarea.value,
    dialect: engineOf(warehouse.value),
    label: "SQL",
    onChange: (text) => {
      textarea.value = text; // the page's text stays readable where the textarea was
      $("format").disabled = true; // the formatted text is of the SQL before this edit
      saveTab();
      analyzeSoon();
    },
    onRun: () => run(),
    onCursor: (line, column) => {
      $("cursor").textContent = line + ":" + column;
    },
  });
  textarea.hidden = true;
  $("sql-editor").hidden = false;
  window.karimasuSqlEditor = editor; // for the browser tests and the console

  function engineOf(name) {
    const known = config.warehouses[name];
    return known ? known.engine : "";
  }

  function jumpTo(line, column) {
    editor.goTo(line, column);
  }

  function positionButton(line, column) {
    if (!line) return null;
    return element(
      "button",
      { type: "button", class: "position", onclick: () => jumpTo(line, column) },
      fmt(L.position, { line, column })
    );
  }

  // --- tabs: several queries open, kept in localStorage ----------------------------------

  function loadTabs() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(TABS_KEY) || "null");
      if (saved && Array.isArray(saved.tabs) && saved.tabs.length) return saved;
    } catch (error) {
      // a broken entry starts afresh
    }
    return { tabs: [], active: null, next: 1 };
  }

  const tabs = loadTabs();

  function activeTab() {
    return tabs.tabs.find((tab) => tab.id === tabs.active) || tabs.tabs[0];
  }

  function storeTabs() {
    try {
      window.localStorage.setItem(TABS_KEY, JSON.stringify(tabs));
    } catch (error) {
      // storage full or off: the tabs live for this page only
    }
  }

  function saveTab() {
    const tab = activeTab();
    if (!tab) return;
    tab.sql = editor.getText();
    tab.warehouse = warehouse.value;
    tab.query = state.query ? state.query.id : tab.query || null;
    storeTabs();
    const shown = document.querySelector("#tabs .tab.active .tab-open");
    if (shown && shown.textContent !== tabTitle(tab)) renderTabs();
  }

  function newTab(sql, name) {
    const number = tabs.next || tabs.tabs.length + 1;
    tabs.next = number + 1;
    const tab = { id: "t" + number + "-" + Date.now(), number, sql: sql || "", warehouse: name || warehouse.value, query: null };
    tabs.tabs.push(tab);
    tabs.active = tab.id;
    storeTabs();
    return tab;
  }

  function tabTitle(tab) {
    const first = (tab.sql || "").trim().split("\n")[0];
    return first ? first.slice(0, 24) + (first.length > 24 ? "…" : "") : fmt(L.tab, { number: tab.number });
  }

  function renderTabs() {
    const bar = $("tabs");
    bar.replaceChildren(
      ...tabs.tabs.map((tab) =>
        element(
          "span",
          { class: "tab" + (tab.id === tabs.active ? " active" : "") },
          element(
            "button",
            {
              type: "button",
              role: "tab",
              class: "tab-open",
              "aria-selected": tab.id === tabs.active ? "true" : "false",
              title: tab.sql || "",
              onclick: () => switchTo(tab.id),
            },
            tabTitle(tab)
          ),
          tabs.tabs.length > 1
            ? element("button", { type: "button", class: "tab-close", title: L.close_tab, "aria-label": L.close_tab, onclick: () => closeTab(tab.id) }, "×")
            : null
        )
      ),
      element("button", { type: "button", class: "tab-new", title: L.new_tab, "aria-label": L.new_tab, onclick: () => { saveTab(); newTab("", warehouse.value); openActive(); } }, "+")
    );
  }

  function openActive() {
    const tab = activeTab();
    tabs.active = tab.id;
    if (tab.warehouse && config.warehouses[tab.warehouse] && warehouse.value !== tab.warehouse) {
      warehouse.value = tab.warehouse;
      warehouseChanged();
    }
    clearTimeout(state.poll);
    state.query = null;
    $("outcome").hidden = true;
    $("cancel").hidden = true;
    if (editor.getText() !== tab.sql) editor.setText(tab.sql || "");
    renderTabs();
    storeTabs();
    analyze();
    if (tab.query) reopen(tab.query);
  }

  function switchTo(id) {
    if (id === tabs.active) return;
    saveTab();
    tabs.active = id;
    openActive();
  }

  function closeTab(id) {
    const index = tabs.tabs.findIndex((tab) => tab.id === id);
    if (index < 0 || tabs.tabs.length < 2) return;
    tabs.tabs.splice(index, 1);
    if (tabs.active === id) {
      tabs.active = tabs.tabs[Math.max(0, index - 1)].id;
      openActive();
    } else {
      renderTabs();
      storeTabs();
    }
  }

  async function reopen(id) {
    const answer = await api("GET", config.urls.queries + id + "/");
    if (answer.status === 200 && activeTab().query === id) {
      $("outcome").hidden = false;
      resetOutcome();
      show(answer.body);
    }
  }

  // --- analysis -------------------------------------------------------------------------

  function renderFindings(list, findings) {
    list.replaceChildren(
      ...findings.map((finding) =>
        element(
          "li",
          { class: "finding " + finding.severity },
          element("span", { class: "severity" }, L.severity[finding.severity] || finding.severity),
          " ",
          positionButton(finding.line, finding.column),
          " ",
          element("code", {}, finding.rule),
          " ",
          finding.message,
          finding.suggestion ? element("div", { class: "suggestion" }, L.suggestion + " " + finding.suggestion) : null
        )
      )
    );
  }

  function renderAnalysis(report) {
    const decision = $("decision");
    decision.className = "decision " + report.decision;
    decision.textContent = L.decision[report.decision] || report.decision;
    const estimate = $("estimate");
    estimate.replaceChildren();
    if (report.estimate) {
      const e = report.estimate;
      // One row estimate, the gate's (see L.rows_why for why the EXPLAIN's is not shown).
      estimate.append(
        element("dt", { title: L.rows_why }, L.rows),
        element("dd", { id: "estimate-rows", title: L.rows_why }, number(e.rows)),
        element("dd", { class: "estimate-note muted small", title: L.rows_why }, L.rows_source)
      );
      const items = [
        [L.bytes_scanned, bytes(e.bytes_scanned)],
        [L.intermediate_rows, number(e.intermediate_rows)],
        [L.cost_class, L.cost[e.cost_class] || e.cost_class],
      ];
      if (e.runtime_s !== null && e.runtime_s !== undefined) {
        items.push([L.runtime, fmt(L.seconds, { seconds: Number(e.runtime_s).toFixed(1) })]);
      }
      items.forEach(([term, value]) => estimate.append(element("dt", {}, term), element("dd", {}, value)));
    }
    estimate.hidden = !report.estimate;
    const findings = report.findings.slice();
    if (report.error && !findings.length) {
      findings.push({ severity: "error", rule: report.error.kind, message: report.error.message,
                      line: report.error.line, column: report.error.column, suggestion: "" });
    }
    state.findings = findings;
    editor.setFindings(findings);
    renderFindings($("findings"), findings);
    if (!findings.length && report.decision === "allow") {
      $("findings").append(element("li", { class: "muted" }, L.no_findings));
    }
  }

  function clearAnalysis(text, kind) {
    $("decision").className = kind;
    $("decision").textContent = text;
    $("estimate").hidden = true;
    $("findings").replaceChildren();
    state.findings = [];
    editor.setFindings([]);
  }

  async function analyze() {
    const text = editor.getText();
    const seq = (state.seq += 1);
    if (!text.trim()) {
      clearAnalysis(L.empty, "muted");
      return;
    }
    $("decision").className = "decision pending";
    $("decision").textContent = L.analyzing;
    const answer = await api("POST", config.urls.analyze, { warehouse: warehouse.value, sql: text });
    if (seq !== state.seq) return; // a newer edit is being analyzed
    const current = text === editor.getText();
    state.formatted = answer.status === 200 && current ? answer.body.normalized_sql : "";
    $("format").disabled = !state.formatted || state.formatted === text;
    if (!current) return; // the marks would point into text that has changed
    if (answer.status === 200) {
      renderAnalysis(answer.body);
    } else {
      clearAnalysis(errorText(answer), "decision reject");
    }
  }

  function analyzeSoon() {
    clearTimeout(state.timer);
    state.timer = setTimeout(analyze, 400);
  }

  // --- running ----------------------------------------------------------------------------

  function resetOutcome() {
    clearTimeout(state.poll);
    $("outcome").hidden = false;
    $("refusal").hidden = true;
    $("acknowledge").hidden = true;
    $("override").hidden = true;
    $("justification-error").hidden = true;
    $("result").hidden = true;
    $("reasons").replaceChildren();
    $("status").className = "";
  }

  function setStatus(text, kind) {
    $("status").textContent = text;
    $("status").className = "status " + (kind || "");
  }

  async function run(options) {
    // export: a result past the row cap is kept whole (up to the warehouse's export cap) for
    // the downloads; the pages and chart stay on the capped rows.
    const body = { warehouse: warehouse.value, sql: editor.getText(), export: true };
    if (options && options.acknowledge) body.acknowledge_warnings = true;
    if (options && options.justification) body.override_justification = options.justification;
    if (!body.sql.trim()) return;
    resetOutcome();
    setStatus(L.submitting, "queued");
    $("run").disabled = true;
    const answer = await api("POST", config.urls.queries, body);
    $("run").disabled = false;
    if (answer.status === 201 || answer.status === 202) {
      show(answer.body);
      return;
    }
    const error = answer.body.error || { code: "error", message: L.failed, details: {} };
    const details = error.details || {};
    // The API's own words are for API clients; the page says what its buttons do.
    setStatus(error.code === "acknowledgement_required" ? L.needs_ack : error.message, "failed");
    if (details.line) {
      jumpTo(details.line, details.column);
      if (details.findings) editor.setFindings(details.findings);
    }
    if (error.code === "acknowledgement_required" || error.code === "query_rejected") {
      $("refusal").hidden = false;
      renderFindings($("reasons"), details.findings || []);
      if (error.code === "acknowledgement_required") $("acknowledge").hidden = false;
      else if (config.can_override) $("override").hidden = false;
    }
  }

  function show(query) {
    state.query = query;
    const tab = activeTab();
    if (tab && tab.query !== query.id) {
      tab.query = query.id;
      storeTabs();
    }
    const active = ACTIVE.includes(query.status);
    $("cancel").hidden = !active || (query.user !== config.username && !config.is_admin);
    const label = L.status[query.status] || query.status;
    if (query.status === "queued") {
      setStatus(label + "…", "queued");
    } else if (query.status === "running") {
      const since = query.started_at ? (Date.now() - Date.parse(query.started_at)) / 1000 : 0;
      setStatus(fmt(L.running_for, { seconds: Math.max(0, since).toFixed(0) }), "running");
    } else if (query.status === "succeeded") {
      let text = fmt(L.finished, {
        rows: number(query.row_count || 0),
        seconds: query.duration_s === null ? "?" : Number(query.duration_s).toFixed(2),
      });
      if (query.truncated) text += " " + fmt(L.truncated, { rows: number(query.row_count || 0) });
      if (query.cached_from) text += " " + fmt(L.cached, { id: query.cached_from });
      setStatus(text, "succeeded");
      state.page = 1;
      state.chartData = null;
      loadPage();
    } else {
      let text = label;
      if (query.kill_reason || query.killed_by) {
        text += ": " + fmt(L.killed, { user: query.killed_by || "?", reason: query.kill_reason || "-" });
      }
      if (query.error && query.error.message) text += ": " + query.error.message;
      setStatus(text, query.status);
    }
    if (active) {
      state.poll = setTimeout(async () => {
        const answer = await api("GET", config.urls.queries + query.id + "/");
        if (state.query && state.query.id !== query.id) return; // another tab took over
        if (answer.status === 200) show(answer.body);
        else setStatus(errorText(answer), "failed");
      }, 1000);
    }
  }

  async function loadPage() {
    const query = state.query;
    const url = config.urls.queries + query.id + "/results/?page=" + state.page + "&page_size=" + config.page_size;
    const answer = await api("GET", url);
    if (answer.status !== 200) {
      setStatus(errorText(answer), "failed");
      return;
    }
    const page = answer.body;
    const table = $("rows");
    table.tHead.replaceChildren(element("tr", {}, page.columns.map((c) => element("th", {}, c))));
    table.tBodies[0].replaceChildren(
      ...page.rows.map((row) =>
        element("tr", {}, row.map((cell) => element("td", { class: cell === null ? "null" : "" }, cell === null ? "NULL" : cell)))
      )
    );
    const first = page.row_count ? (page.page - 1) * page.page_size + 1 : 0;
    const last = Math.min(page.page * page.page_size, page.row_count);
    $("page-info").textContent = fmt(L.page, { first: number(first), last: number(last), total: number(page.row_count) });
    $("previous").disabled = page.page <= 1;
    $("next").disabled = last >= page.row_count;
    $("download-csv").href = config.urls.queries + query.id + "/results/?download=csv";
    $("download-parquet").href = config.urls.queries + query.id + "/results/?download=parquet";
    $("download-arrow").href = config.urls.queries + query.id + "/results/?download=arrow";
    const known = config.warehouses[query.warehouse] || config.warehouses[warehouse.value] || {};
    const download = page.download || { rows: page.row_count, complete: !page.truncated, message: "" };
    $("download-note").textContent = download.complete
      ? fmt(L.downloads, { rows: number(download.rows), cap: number(known.row_cap || 0) })
      : download.message;
    $("result").hidden = false;
    if (!$("chart-view").hidden) drawChart();
  }

  async function cancel() {
    if (!state.query) return;
    $("cancel").disabled = true;
    const answer = await api("POST", config.urls.queries + state.query.id + "/cancel/", { reason: "" });
    $("cancel").disabled = false;
    if (answer.status === 200) {
      clearTimeout(state.poll);
      show(answer.body);
    } else {
      setStatus(errorText(answer), "failed");
    }
  }

  // --- charts (Chart.js, loaded the first time a chart is asked for) ----------------------

  function loadChartLibrary() {
    if (window.KarimasuCharts) return Promise.resolve(window.KarimasuCharts);
    if (!state.chartLoading) {
      state.chartLoading = new Promise((resolve, reject) => {
        const script = element("script", { src: config.scripts.charts });
        script.addEventListener("load", () => resolve(window.KarimasuCharts));
        script.addEventListener("error", reject);
        document.head.append(script);
      });
    }
    return state.chartLoading;
  }

  async function chartData() {
    if (state.chartData && state.chartData.id === state.query.id) return state.chartData;
    const url = config.urls.queries + state.query.id + "/results/?page=1&page_size=" + config.chart_rows;
    const answer = await api("GET", url);
    if (answer.status !== 200) throw new Error(errorText(answer));
    state.chartData = { id: state.query.id, columns: answer.body.columns, rows: answer.body.rows, total: answer.body.row_count };
    return state.chartData;
  }

  function numeric(value) {
    return value !== null && value !== "" && !Number.isNaN(Number(value));
  }

  function fillAxes(data) {
    const numericColumns = data.columns
      .map((name, index) => ({ name, index }))
      .filter(({ index }) => data.rows.length && data.rows.every((row) => row[index] === null || numeric(row[index])));
    const options = (list) => list.map(({ name, index }) => element("option", { value: String(index) }, name));
    const x = $("chart-x");
    const y = $("chart-y");
    const keepX = x.value;
    const keepY = y.value;
    x.replaceChildren(...options(data.columns.map((name, index) => ({ name, index }))));
    y.replaceChildren(...options(numericColumns));
    if (keepX && Number(keepX) < data.columns.length) x.value = keepX;
    if (keepY && numericColumns.some(({ index }) => String(index) === keepY)) y.value = keepY;
    else if (numericColumns.length) {
      // a first guess: the first text column across, the first numeric one up
      const other = numericColumns.find(({ index }) => String(index) !== x.value);
      y.value = String((other || numericColumns[0]).index);
    }
    return numericColumns.length > 0;
  }

  async function drawChart() {
    const note = $("chart-note");
    let data;
    let library;
    try {
      [data, library] = await Promise.all([chartData(), loadChartLibrary()]);
    } catch (error) {
      note.textContent = L.failed;
      return;
    }
    if (state.chart) {
      state.chart.destroy();
      state.chart = null;
    }
    if (!fillAxes(data)) {
      note.textContent = L.chart_none;
      return;
    }
    note.textContent = data.total > data.rows.length ? fmt(L.chart_rows, { rows: number(data.rows.length) }) : "";
    const x = Number($("chart-x").value);
    const y = Number($("chart-y").value);
    state.chart = new library.Chart($("chart"), {
      type: $("chart-type").value,
      data: {
        labels: data.rows.map((row) => (row[x] === null ? "NULL" : String(row[x]))),
        datasets: [{ label: data.columns[y], data: data.rows.map((row) => (row[y] === null ? null : Number(row[y]))), backgroundColor: "#2f6fde99", borderColor: "#2f6fde" }],
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false },
    });
  }

  function showView(chart) {
    $("table-view").hidden = chart;
    $("chart-view").hidden = !chart;
    $("show-table").setAttribute("aria-selected", String(!chart));
    $("show-chart").setAttribute("aria-selected", String(chart));
    if (chart) drawChart();
  }

  // --- the catalog: the side list and the editor's autocomplete ---------------------------

  function insertButton(text) {
    return element("button", { type: "button", class: "insert", title: L.insert, onclick: () => editor.insert(text) }, text);
  }

  function renderCatalog(tables) {
    const filter = $("catalog-filter").value.trim().toLowerCase();
    const shown = tables.filter(
      (t) => !filter || t.name.toLowerCase().includes(filter) || t.columns.some((c) => c.name.toLowerCase().includes(filter))
    );
    $("catalog-count").textContent = fmt(L.tables, { count: number(tables.length) });
    $("catalog-tables").replaceChildren(
      ...shown.map((table) =>
        element(
          "li",
          {},
          element(
            "details",
            {},
            element(
              "summary",
              {},
              insertButton(table.name),
              " ",
              element("span", { class: "muted" }, table.rows === null ? "" : fmt(L.table_rows, { rows: number(table.rows) }))
            ),
            element(
              "ul",
              {},
              table.columns.map((column) =>
                element("li", {}, insertButton(column.name), " ", element("span", { class: "muted" }, column.type))
              )
            )
          )
        )
      )
    );
  }

  // lang-sql's schema: {"schema.table": [columns]}; the most common schema is the default,
  // so its tables complete unqualified.
  function completionSchema(tables) {
    const schema = {};
    const counts = {};
    tables.forEach((table) => {
      schema[table.schema + "." + table.name] = table.columns.map((column) => ({ label: column.name, type: "property", detail: column.type }));
      counts[table.schema] = (counts[table.schema] || 0) + 1;
    });
    const main = Object.keys(counts).sort((a, b) => counts[b] - counts[a])[0];
    return { schema, main };
  }

  async function loadCatalog() {
    const name = warehouse.value;
    let tables = state.catalogs[name];
    if (!tables) {
      const answer = await api("GET", config.urls.warehouses + encodeURIComponent(name) + "/catalog/");
      tables = answer.status === 200 ? answer.body : [];
      state.catalogs[name] = tables;
    }
    if (name !== warehouse.value) return;
    state.catalog = tables;
    const { schema, main } = completionSchema(tables);
    editor.setSchema(schema, main);
    renderCatalog(tables);
  }

  function warehouseChanged() {
    editor.setDialect(engineOf(warehouse.value));
    loadCatalog();
  }

  // --- wiring -----------------------------------------------------------------------------

  $("format").addEventListener("click", () => {
    if (!state.formatted) return;
    editor.setText(state.formatted);
    $("format").disabled = true;
    analyzeSoon();
  });
  warehouse.addEventListener("change", () => {
    warehouseChanged();
    saveTab();
    analyze();
  });
  $("catalog-filter").addEventListener("input", () => renderCatalog(state.catalog || []));
  $("run").addEventListener("click", () => run());
  $("acknowledge").addEventListener("click", () => run({ acknowledge: true }));
  $("override-run").addEventListener("click", () => {
    const justification = $("justification").value.trim();
    const problem = $("justification-error");
    if (!justification) {
      problem.textContent = L.justification_required;
      problem.hidden = false;
      $("justification").setAttribute("aria-invalid", "true");
      $("justification").focus();
      return;
    }
    problem.hidden = true;
    $("justification").removeAttribute("aria-invalid");
    run({ justification });
  });
  $("justification").addEventListener("input", () => {
    if ($("justification").value.trim()) $("justification-error").hidden = true;
  });
  $("cancel").addEventListener("click", cancel);
  $("previous").addEventListener("click", () => { state.page -= 1; loadPage(); });
  $("next").addEventListener("click", () => { state.page += 1; loadPage(); });
  $("show-table").addEventListener("click", () => showView(false));
  $("show-chart").addEventListener("click", () => showView(true));
  ["chart-type", "chart-x", "chart-y"].forEach((id) => $(id).addEventListener("change", drawChart));

  // Start: a reopened query (?query=ID) gets a tab of its own (or the empty one); otherwise
  // the saved tabs come back, or one tab with the page's text.
  if (config.query) {
    const empty = tabs.tabs.find((tab) => !(tab.sql || "").trim());
    const tab = empty || newTab(config.query.sql, config.query.warehouse);
    Object.assign(tab, { sql: config.query.sql, warehouse: config.query.warehouse, query: config.query.id });
    tabs.active = tab.id;
  } else if (!tabs.tabs.length) {
    newTab(editor.getText(), warehouse.value);
  }
  const start = activeTab();
  tabs.active = start.id;
  if (start.warehouse && config.warehouses[start.warehouse]) warehouse.value = start.warehouse;
  if (editor.getText() !== (start.sql || "")) editor.setText(start.sql || "");
  renderTabs();
  storeTabs();
  warehouseChanged();
  if (editor.getText().trim()) analyze();
  if (config.query) {
    $("outcome").hidden = false;
    show(config.query);
  } else if (start.query) {
    reopen(start.query);
  }
})();
