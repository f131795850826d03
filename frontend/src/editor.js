// The SQL editor's code editor: CodeMirror 6 with SQL highlighting in the warehouse's
// dialect, the gate's findings as inline marks (underline, gutter, tooltip), autocomplete
// of the catalog's schemas, tables and columns, and Ctrl/Cmd-Enter to run. Exposed as
// window.KarimasuEditor.create(options); frontend/static/karimasu/sql-editor.js drives it.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { PostgreSQL, SQLDialect, StandardSQL, sql } from "@codemirror/lang-sql";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorSelection, EditorState, Prec } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  placeholder,
} from "@codemirror/view";

// DuckDB reads PostgreSQL's syntax plus a few words of its own.
const DuckDB = SQLDialect.define({
  ...PostgreSQL.spec,
  keywords:
    PostgreSQL.spec.keywords +
    " qualify pivot unpivot exclude replace positional asof anti semi struct list map union_by_name summarize describe",
});

const DIALECTS = { duckdb: DuckDB, postgres: PostgreSQL, "": StandardSQL };

const SEVERITY = { error: "error", warn: "warning", info: "info" };

// A finding points at the start of what it is about (1-based line and column); the mark
// covers the word there (at least one character).
function findingRange(doc, finding) {
  const lineNo = Math.min(Math.max(finding.line || 1, 1), doc.lines);
  const line = doc.line(lineNo);
  const from = Math.min(line.from + Math.max((finding.column || 1) - 1, 0), line.to);
  let to = from;
  const text = line.text;
  while (to < line.to && /[\w$."]/.test(text[to - line.from])) to += 1;
  if (to === from) to = Math.min(from + 1, doc.length);
  return { from, to: Math.max(to, from) };
}

function create(options) {
  const language = new Compartment();
  let schema = {};
  let dialectName = options.dialect || "";

  function sqlExtension() {
    return sql({
      dialect: DIALECTS[dialectName] || StandardSQL,
      schema,
      defaultSchema: options.defaultSchema || undefined,
      upperCaseKeywords: true,
    });
  }

  const view = new EditorView({
    parent: options.parent,
    state: EditorState.create({
      doc: options.doc || "",
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        autocompletion({ activateOnTyping: true }),
        lintGutter(),
        placeholder(options.placeholder || ""),
        language.of(sqlExtension()),
        Prec.highest(
          keymap.of([
            {
              key: "Mod-Enter",
              run: () => {
                if (options.onRun) options.onRun();
                return true;
              },
            },
          ])
        ),
        keymap.of([
          ...closeBracketsKeymap,
          ...defaultKeymap,
          ...searchKeymap,
          ...historyKeymap,
          ...completionKeymap,
          indentWithTab,
        ]),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": options.label || "SQL", spellcheck: "false" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && options.onChange) options.onChange(update.state.doc.toString());
          if ((update.selectionSet || update.docChanged) && options.onCursor) {
            const head = update.state.selection.main.head;
            const line = update.state.doc.lineAt(head);
            options.onCursor(line.number, head - line.from + 1);
          }
        }),
      ],
    }),
  });

  function reconfigure() {
    view.dispatch({ effects: language.reconfigure(sqlExtension()) });
  }

  return {
    view,
    getText: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    focus: () => view.focus(),
    insert(text) {
      view.dispatch(view.state.replaceSelection(text));
      view.focus();
    },
    // Moves the cursor to a 1-based line and column (clamped to the text) and shows it.
    goTo(line, column) {
      const doc = view.state.doc;
      const target = doc.line(Math.min(Math.max(line, 1), doc.lines));
      const pos = Math.min(target.from + Math.max(column - 1, 0), target.to);
      view.dispatch({ selection: EditorSelection.cursor(pos), scrollIntoView: true });
      view.focus();
    },
    // findings: [{line, column, severity, rule, message, suggestion}] -> marks.
    setFindings(findings) {
      const doc = view.state.doc;
      const diagnostics = findings
        .filter((finding) => finding.line)
        .map((finding) => {
          const range = findingRange(doc, finding);
          return {
            from: range.from,
            to: range.to,
            severity: SEVERITY[finding.severity] || "info",
            source: finding.rule,
            message: finding.message + (finding.suggestion ? "\n" + finding.suggestion : ""),
          };
        });
      view.dispatch(setDiagnostics(view.state, diagnostics));
    },
    // schema: {"schema.table": ["col", ...]} or {"table": [...]}, as lang-sql takes it.
    setSchema(value, defaultSchema) {
      schema = value || {};
      options.defaultSchema = defaultSchema;
      reconfigure();
    },
    setDialect(name) {
      dialectName = name || "";
      reconfigure();
    },
  };
}

window.KarimasuEditor = { create };
