// `make frontend` (npm ci && node build): bundles each entry of src/ with esbuild into
// static/vendor/<name>/, minified, with a banner naming the exact package versions (a test
// checks it against package-lock.json), and copies the bundled packages' licences there.
const esbuild = require("esbuild");
const fs = require("fs");
const path = require("path");

const here = __dirname;
const lock = JSON.parse(fs.readFileSync(path.join(here, "package-lock.json"), "utf8"));
const version = (name) => lock.packages[`node_modules/${name}`].version;

const BUNDLES = {
  "vis-timeline": {
    entry: "src/calendar.js",
    packages: ["vis-timeline", "vis-data", "vis-util", "moment", "@egjs/hammerjs",
      "propagating-hammerjs", "keycharm", "component-emitter", "uuid", "xss", "cssfilter"],
  },
  chartjs: { entry: "src/charts.js", packages: ["chart.js", "@kurkle/color"] },
};
const LICENCE_FILES = /^(LICEN[CS]E|COPYING)/i;

for (const [name, bundle] of Object.entries(BUNDLES)) {
  const out = path.join(here, "static", "vendor", name);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const banner = `/*! karimasu vendor bundle ${name}: ${bundle.packages
    .map((p) => `${p}@${version(p)}`)
    .join(" ")} (licences: LICENSES/) */`;
  esbuild.buildSync({
    entryPoints: { [name]: path.join(here, bundle.entry) },
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
  for (const pkg of bundle.packages) {
    const dir = path.join(here, "node_modules", pkg);
    const files = fs.readdirSync(dir).filter((f) => LICENCE_FILES.test(f));
    if (files.length === 0) throw new Error(`${pkg} ships no licence file`);
    for (const file of files) {
      fs.copyFileSync(path.join(dir, file), path.join(licences, `${pkg.replace("@", "").replace("/", "__")}.${file}`));
    }
  }
}
