// The SQL editor: analysis as you type, run, acknowledge or override, poll, cancel, page.
// Plain browser JavaScript over the REST API (/api/v1/queries/...), with the page's session
// and CSRF token; every label comes translated from the page (#sql-editor-config).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("sql-editor-config").textContent);
  const L = config.labels;
  const $ = (id) => document.getElementById(id);
  const sql = $("sql");
  const warehouse = $("warehouse");
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const ACTIVE = ["queued", "running"];
  const state = { seq: 0, timer: null, query: null, poll: null, page: 1 };

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

  // --- the cursor and positions -------------------------------------------------------

  function offsetOf(line, column) {
    const lines = sql.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i].length + 1;
    return Math.min(offset + Math.max(column - 1, 0), sql.value.length);
  }

  function showCursor() {
    const before = sql.value.slice(0, sql.selectionStart).split("\n");
    $("cursor").textContent = before.length + ":" + (before[before.length - 1].length + 1);
  }

  function jumpTo(line, column) {
    const offset = offsetOf(line, column);
    sql.focus();
    sql.setSelectionRange(offset, offset);
    showCursor();
  }

  function positionButton(line, column) {
    if (!line) return null;
    return element(
      "button",
      { type: "button", class: "position", onclick: () => jumpTo(line, column) },
      fmt(L.position, { line, column })
    );
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
      const items = [
        [L.rows, number(e.rows)],
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
    renderFindings($("findings"), findings);
    if (!findings.length && report.decision === "allow") {
      $("findings").append(element("li", { class: "muted" }, L.no_findings));
    }
  }

  async function analyze() {
    const text = sql.value;
    const seq = (state.seq += 1);
    if (!text.trim()) {
      $("decision").className = "muted";
      $("decision").textContent = L.empty;
      $("estimate").hidden = true;
      $("findings").replaceChildren();
      return;
    }
    $("decision").className = "decision pending";
    $("decision").textContent = L.analyzing;
    const answer = await api("POST", config.urls.analyze, { warehouse: warehouse.value, sql: text });
    if (seq !== state.seq) return; // a newer edit is being analyzed
    state.formatted = answer.status === 200 && text === sql.value ? answer.body.normalized_sql : "";
    $("format").disabled = !state.formatted || state.formatted === text;
    if (answer.status === 200) {
      renderAnalysis(answer.body);
    } else {
      $("decision").className = "decision reject";
      $("decision").textContent = errorText(answer);
      $("estimate").hidden = true;
      $("findings").replaceChildren();
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
    $("result").hidden = true;
    $("reasons").replaceChildren();
    $("status").className = "";
  }

  function setStatus(text, kind) {
    $("status").textContent = text;
    $("status").className = "status " + (kind || "");
  }

  async function run(options) {
    const body = { warehouse: warehouse.value, sql: sql.value };
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
    setStatus(error.message, "failed");
    if (details.line) jumpTo(details.line, details.column);
    if (error.code === "acknowledgement_required" || error.code === "query_rejected") {
      $("refusal").hidden = false;
      renderFindings($("reasons"), details.findings || []);
      if (error.code === "acknowledgement_required") $("acknowledge").hidden = false;
      else if (config.can_override) $("override").hidden = false;
    }
  }

  function show(query) {
    state.query = query;
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
    $("result").hidden = false;
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

  // --- the catalog ------------------------------------------------------------------------

  function insertAtCursor(text) {
    const start = sql.selectionStart;
    const end = sql.selectionEnd;
    sql.setRangeText(text, start, end, "end");
    sql.focus();
    showCursor();
    analyzeSoon();
  }

  function insertButton(text) {
    return element("button", { type: "button", class: "insert", title: L.insert, onclick: () => insertAtCursor(text) }, text);
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

  async function loadCatalog() {
    const answer = await api("GET", config.urls.warehouses + encodeURIComponent(warehouse.value) + "/catalog/");
    state.catalog = answer.status === 200 ? answer.body : [];
    renderCatalog(state.catalog);
  }

  // --- wiring -----------------------------------------------------------------------------

  sql.addEventListener("input", () => {
    $("format").disabled = true; // the formatted text is of the SQL before this edit
    analyzeSoon();
  });
  $("format").addEventListener("click", () => {
    if (!state.formatted) return;
    sql.value = state.formatted;
    $("format").disabled = true;
    showCursor();
    analyzeSoon();
  });
  ["keyup", "click", "select"].forEach((name) => sql.addEventListener(name, showCursor));
  sql.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      run();
    }
  });
  warehouse.addEventListener("change", () => {
    analyze();
    loadCatalog();
  });
  $("catalog-filter").addEventListener("input", () => renderCatalog(state.catalog || []));
  $("run").addEventListener("click", () => run());
  $("acknowledge").addEventListener("click", () => run({ acknowledge: true }));
  $("override-run").addEventListener("click", () => {
    const justification = $("justification").value.trim();
    if (!justification) {
      $("justification").focus();
      return;
    }
    run({ justification });
  });
  $("cancel").addEventListener("click", cancel);
  $("previous").addEventListener("click", () => { state.page -= 1; loadPage(); });
  $("next").addEventListener("click", () => { state.page += 1; loadPage(); });

  showCursor();
  loadCatalog();
  if (sql.value.trim()) analyze();
  if (config.query) {
    $("outcome").hidden = false;
    show(config.query);
  }
})();
