// Album format and layout: the user's saved choice, and what this server can make, read once from
// its format registry (GET /v1/formats) or, on an older server, its OpenAPI document (a server
// without the `format` key makes zips only; one without `layout` makes its default layout only).
// Nothing unknown to the server is sent.

import { api, readJson, writeJson } from "./api.js";

const STORAGE = "jmbooru.albumChoices";
export const FORMATS = ["zip", "cbz", "pdf"];
export const LAYOUTS = ["flat", "chapters"];
const DEFAULTS = { format: "zip", layout: "flat" };

let capabilities = null;

function resolve(doc, schema, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 20 || typeof schema.$ref !== "string") return schema;
  let node = doc;
  for (const part of schema.$ref.replace(/^#\//, "").split("/")) node = node?.[part];
  return resolve(doc, node, depth + 1);
}

/** The values an (enum, const, anyOf/oneOf/allOf of those) schema allows, or null if it says none. */
function allowedValues(doc, schema, depth = 0) {
  const node = resolve(doc, schema);
  if (!node || typeof node !== "object" || depth > 10) return null;
  if (Array.isArray(node.enum)) return new Set(node.enum);
  if ("const" in node) return new Set([node.const]);
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (!Array.isArray(node[key])) continue;
    const values = new Set();
    let found = false;
    for (const branch of node[key]) {
      const some = allowedValues(doc, branch, depth + 1);
      if (some) {
        found = true;
        for (const value of some) values.add(value);
      }
    }
    if (found) return values;
  }
  return null;
}

function bodyProperties(doc) {
  const operation = doc?.paths?.["/v1/download/album/{album_id}"]?.post;
  const schema = resolve(doc, operation?.requestBody?.content?.["application/json"]?.schema);
  const candidates = [schema, ...(schema?.anyOf ?? []), ...(schema?.oneOf ?? [])].map((s) => resolve(doc, s));
  return candidates.find((s) => s && typeof s.properties === "object")?.properties ?? {};
}

async function readCapabilities() {
  try {
    // The server's format registry; an older server without it is read from its OpenAPI document.
    const listed = await api("/v1/formats");
    const formats = listed.formats.map((f) => String(f.name));
    const layouts = new Set(listed.formats.flatMap((f) => f.layouts.map(String)));
    for (const name of formats) if (!FORMATS.includes(name)) FORMATS.push(name);
    for (const name of layouts) if (!LAYOUTS.includes(name)) LAYOUTS.push(name);
    return { format: { sent: true, values: new Set(formats), listed: listed.formats },
      layout: { sent: true, values: layouts } };
  } catch {
    // fall through to the OpenAPI document
  }
  try {
    const doc = await api("/openapi.json");
    const props = bodyProperties(doc);
    const known = (name, all) => {
      if (!props[name]) return { sent: false, values: new Set([DEFAULTS[name]]) };
      const values = allowedValues(doc, props[name]);
      return { sent: true, values: new Set(all.filter((v) => !values || values.has(v))) };
    };
    return { format: known("format", FORMATS), layout: known("layout", LAYOUTS) };
  } catch {
    // No document: offer everything and let the server answer 422 with its sentence.
    return { format: { sent: true, values: new Set(FORMATS) }, layout: { sent: true, values: new Set(LAYOUTS) } };
  }
}

export const albumChoices = {
  capabilities() {
    capabilities ??= readCapabilities();
    return capabilities;
  },

  saved() {
    const value = readJson(STORAGE, {});
    return {
      format: FORMATS.includes(value.format) ? value.format : DEFAULTS.format,
      layout: LAYOUTS.includes(value.layout) ? value.layout : DEFAULTS.layout,
    };
  },

  save(choices) {
    writeJson(STORAGE, choices);
  },

  /** The choices this server can honour (layout applies to zips only). */
  async effective(choices) {
    const caps = await this.capabilities();
    const format = caps.format.values.has(choices.format) ? choices.format : DEFAULTS.format;
    const layout = format === "zip" && caps.layout.values.has(choices.layout) ? choices.layout : DEFAULTS.layout;
    return { format, layout };
  },

  /** The request body keys for these choices (only keys the server documents). */
  async requestFields(choices) {
    const caps = await this.capabilities();
    const fields = {};
    if (caps.format.sent) fields.format = choices.format;
    if (caps.layout.sent && choices.format === "zip") fields.layout = choices.layout;
    return fields;
  },

  label(title, choices) {
    if (choices.format !== "zip") return `${title} (${choices.format})`;
    return choices.layout !== "flat" ? `${title} (zip, ${choices.layout})` : title;
  },
};
