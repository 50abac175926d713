// Renders the report template with a JSON data file, the way `crypto-etl report` does:
// the marker is replaced, literally and once, by the JSON text with every `<` escaped.
//
//   node tests/node/render-sample.mjs [DATA.json] [OUT.html]
//
// DATA defaults to sample-report-data.json beside this script; OUT defaults to a file in the
// system temp directory. Prints the path written.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const templatePath = path.resolve(here, '../../host/src/report/template.html');
const MARKER = '/*REPORT_DATA*/null';

const dataPath = path.resolve(process.argv[2] ?? path.join(here, 'sample-report-data.json'));
const outPath = path.resolve(process.argv[3] ?? path.join(os.tmpdir(), 'crypto-etl-sample-report.html'));

const template = fs.readFileSync(templatePath, 'utf8');
const occurrences = template.split(MARKER).length - 1;
if (occurrences !== 1) {
  console.error(`${templatePath}: expected the marker ${MARKER} exactly once, found ${occurrences}`);
  process.exit(1);
}
const data = JSON.parse(fs.readFileSync(dataPath, 'utf8'));
// `<` as \u003c keeps `</script>` and `<!--` out of the script element; JSON.parse reads it back.
const json = JSON.stringify(data).replace(/</g, '\\u003c');
const [before, after] = template.split(MARKER);
fs.writeFileSync(outPath, before + json + after);
console.log(outPath);
