// Bundles the front-end packages (npm, exact versions in package-lock.json) into
// frontend/static/vendor/<name>/ with esbuild: `make frontend` runs `npm ci && node build.js`.
// Each bundle starts with a banner naming every package it contains and its version
// (tests/frontend/test_vendor_bundles.py checks it against package-lock.json), and its
// folder holds those packages' licences (LICENSES.txt). `make run` and `make test` use the
// committed bundles and never need npm.
"use strict";

const esbuild = require("esbuild");
const fs = require("fs");
const path = require("path");

const BUNDLES = [
  // SQL editor (ui-editor): CodeMirror 6 with lang-sql, lint marks and autocomplete.
  { entry: "src/editor.js", out: "codemirror/editor.min.js" },
  // Charts (Chart.js, bar and line only): the SQL editor's result charts, the team view's
  // usage and the job page's efficiency.
  { entry: "src/editor-charts.js", out: "chartjs/charts.min.js" },
];

// The bookings calendar (vis-timeline, with its CSS): its own builder, the licences of the
// listed packages in LICENSES/ (tests/portal/test_vendor_bundles.py checks both kinds).
const lock = JSON.parse(fs.readFileSync(path.join(__dirname, "package-lock.json"), "utf8"));
const lockedVersion = (name) => lock.packages[`node_modules/${name}`].version;
const TIMELINE = {
  name: "vis-timeline",
  entry: "src/calendar.js",
  packages: ["vis-timeline", "vis-data", "vis-util", "moment", "@egjs/hammerjs",
    "propagating-hammerjs", "keycharm", "component-emitter", "uuid", "xss", "cssfilter"],
};
const LICENCE_FILES = /^(LICEN[CS]E|COPYING)/i;

function buildTimeline({ name, entry, packages }) {
  const out = path.join(__dirname, "static", "vendor", name);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const banner = `/*! karimasu vendor bundle ${name}: ${packages
    .map((p) => `${p}@${lockedVersion(p)}`)
    .join(" ")} (licences: LICENSES/) */`;
  esbuild.buildSync({
    entryPoints: { [name]: path.join(__dirname, entry) },
    bundle: true,
    minify: true,
    format: "iife",
    target: ["es2020"],
    legalComments: "none",
    banner: { js: banner, css: banner },
    outdir: out,
    logLevel: "warning",
  });
  const licences = path.join(out, "LICENSES");
  fs.mkdirSync(licences);
  for (const pkg of packages) {
    const dir = path.join(__dirname, "node_modules", pkg);
    const files = fs.readdirSync(dir).filter((f) => LICENCE_FILES.test(f));
    if (files.length === 0) throw new Error(`${pkg} ships no licence file`);
    for (const file of files) {
      const target = `${pkg.replace("@", "").replace("/", "__")}.${file}`;
      fs.copyFileSync(path.join(dir, file), path.join(licences, target));
    }
  }
  console.log(name + ": " + packages.length + " packages");
}

function packageOf(file) {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
  return match ? match[1] : null;
}

function licenceOf(dir) {
  const name = fs.readdirSync(dir).find((file) => /^licen[cs]e/i.test(file));
  return name ? fs.readFileSync(path.join(dir, name), "utf8").trim() : null;
}

async function build({ entry, out }) {
  const outfile = path.join(__dirname, "static/vendor", out);
  const first = await esbuild.build({
    entryPoints: [path.join(__dirname, entry)],
    bundle: true,
    minify: true,
    format: "iife",
    target: ["es2020"],
    legalComments: "none",
    metafile: true,
    write: false,
    outfile,
  });
  const names = [...new Set(Object.keys(first.metafile.inputs).map(packageOf).filter(Boolean))].sort();
  const packages = names.map((name) => {
    const dir = path.join(__dirname, "node_modules", name);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    const licence = licenceOf(dir);
    if (!licence) throw new Error(name + " has no licence file");
    return { name, version: meta.version, license: meta.license, licence };
  });
  const banner =
    "/*! Karimasu vendor bundle " + out + " (" + entry + "), built by frontend/build.js from: " +
    packages.map((p) => p.name + "@" + p.version + " (" + p.license + ")").join(", ") +
    ". Licences: LICENSES.txt beside this file. */";
  const text = banner + "\n" + first.outputFiles[0].text;
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  fs.writeFileSync(outfile, text);
  fs.writeFileSync(
    path.join(path.dirname(outfile), "LICENSES.txt"),
    packages.map((p) => "== " + p.name + "@" + p.version + " ==\n\n" + p.licence + "\n").join("\n")
  );
  console.log(out + ": " + (text.length / 1024).toFixed(0) + " KiB, " + packages.length + " packages");
}

(async () => {
  for (const bundle of BUNDLES) await build(bundle);
  buildTimeline(TIMELINE);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
