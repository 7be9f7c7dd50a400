// node samples.mjs LANGS_DIR OUT.json: a sample program per language, the one its sandbox
// image is tested with (LANGS_DIR/<name>/tests/echo.* first, else hello.*), as {name: text}.
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const [langs, out] = process.argv.slice(2);
if (!langs || !out) { console.error("usage: node samples.mjs LANGS_DIR OUT.json"); process.exit(2); }
const samples = {};
for (const name of readdirSync(langs).sort()) {
  const dir = join(langs, name, "tests");
  if (!existsSync(dir)) continue;
  const files = readdirSync(dir).sort();
  const pick = files.find((f) => f.startsWith("echo.")) ?? files.find((f) => f.startsWith("hello."));
  if (pick) samples[name] = readFileSync(join(dir, pick), "utf8");
}
writeFileSync(out, JSON.stringify(samples, null, 1) + "\n");
