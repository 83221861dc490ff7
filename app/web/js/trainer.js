// Booru: the trainer-ready dataset keys (exports, de-duplication, variants). Only what the user set is
// sent, so a form left alone asks for exactly today's archive.

const numberOrNull = (text) => (text.trim() === "" ? null : Number(text));

/** The request keys for the export and de-duplication options of the booru form. */
export function trainerKeys(form) {
  const f = form.elements;
  const keys = {};
  const exports = [...form.querySelectorAll('input[name="exports"]')].filter((c) => c.checked).map((c) => c.value);
  if (exports.length) keys.exports = exports;
  const options = {};
  if (f.trigger.value.trim()) options.trigger = f.trigger.value.trim();
  for (const name of ["resolution", "num_repeats", "keep_tokens"]) {
    const value = numberOrNull(f[name].value);
    if (value !== null) options[name] = value;
  }
  if (f.image_dir.value.trim()) options.image_dir = f.image_dir.value.trim();
  if (Object.keys(options).length) keys.export_options = options;
  if (f.dedupe.checked) {
    const dedupe = { keep: f.dedupe_keep.value };
    const dhash = numberOrNull(f.dedupe_dhash.value);
    const phash = numberOrNull(f.dedupe_phash.value);
    if (dhash !== null) dedupe.dhash = dhash;
    if (phash !== null) dedupe.phash = phash;
    keys.dedupe = dedupe;
  }
  if (f.skip_variants.value !== "none") keys.skip_variants = f.skip_variants.value;
  return keys;
}
