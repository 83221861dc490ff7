// Parses OPDS 1 documents the way Thorium does (Readium's r2-opds-js: XML → OPDS 1 model → OPDS 2)
// and prints, for each file named on the command line, the OPDS 2 JSON it converts to.
// Used by tests/test_opds_clients.py; `npm install` in this folder brings r2-opds-js.
"use strict";
const fs = require("fs");
const { DOMParser } = require("@xmldom/xmldom");
const { XML } = require("r2-utils-js/dist/es8-es2017/src/_utils/xml-js-mapper");
const { initGlobalConverters_GENERIC } = require("r2-shared-js/dist/es8-es2017/src/init-globals");
const { initGlobalConverters_OPDS } = require("r2-opds-js/dist/es8-es2017/src/opds/init-globals");
const { OPDS } = require("r2-opds-js/dist/es8-es2017/src/opds/opds1/opds");
const { convertOpds1ToOpds2 } = require("r2-opds-js/dist/es8-es2017/src/opds/converter");
const { TaJsonSerialize } = require("r2-lcp-js/dist/es8-es2017/src/serializable");

initGlobalConverters_OPDS();
initGlobalConverters_GENERIC();

const results = {};
for (const path of process.argv.slice(2)) {
    const errors = [];
    const dom = new DOMParser({ onError: (level, message) => errors.push(`${level}: ${message}`) })
        .parseFromString(fs.readFileSync(path, "utf8"), "application/xml");
    const opds1 = XML.deserialize(dom, OPDS);
    results[path] = { errors, root: dom.documentElement.localName, feed: TaJsonSerialize(convertOpds1ToOpds2(opds1)) };
}
process.stdout.write(JSON.stringify(results));
