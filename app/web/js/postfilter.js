// The dataset job's post filters in the browser, so the booru preview shows what a download keeps.
// The rules are PostFilters.matches (app/sources/captions.py) and the "no file" check of
// app/sources/selection.py: keep the two in step.

/** A regular expression for a blacklist pattern as Python's fnmatchcase reads it (*, ?, [seq], [!seq]). */
function globToRegExp(pattern) {
  let source = "";
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else if (c === "[") {
      let j = i + 1;
      if (pattern[j] === "!") j += 1;
      if (pattern[j] === "]") j += 1;
      while (j < pattern.length && pattern[j] !== "]") j += 1;
      if (j >= pattern.length) {
        source += "\\["; // no closing bracket: a literal "[", as in fnmatch
      } else {
        let set = pattern.slice(i + 1, j).replace(/\\/g, "\\\\");
        if (set.startsWith("!")) set = `^${set.slice(1)}`;
        else if (set.startsWith("^")) set = `\\${set}`;
        source += `[${set}]`;
        i = j;
      }
    } else source += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^(?:${source})$`, "s");
}

/** The blacklist as the server normalises it: lower case, spaces as underscores. */
function blacklistRules(blacklist) {
  return (blacklist ?? []).map((tag) => tag.trim().toLowerCase().replace(/ /g, "_")).filter(Boolean).map((tag) => (
    tag.includes("*") ? { glob: globToRegExp(tag) } : { tag }));
}

/**
 * A predicate telling whether a dataset job with these filters ({rating, min_width, min_height,
 * min_score, blacklist}, as sent in the request) would keep a post of /v1/booru/{site}/posts.
 */
export function postKeeper(filters) {
  const ratings = filters.rating ? new Set(filters.rating) : null;
  const rules = blacklistRules(filters.blacklist);
  const below = (value, minimum) => minimum !== null && minimum !== undefined && Number(value ?? 0) < minimum;
  return (post) => {
    if (!post.file_url) return false; // restricted or deleted: the job cannot fetch it
    if (ratings && !ratings.has(post.rating)) return false;
    if (below(post.width, filters.min_width) || below(post.height, filters.min_height)) return false;
    if (below(post.score, filters.min_score)) return false;
    if (rules.length) {
      const tags = new Set((Array.isArray(post.tags) ? post.tags : []).map((tag) => String(tag).toLowerCase()));
      for (const rule of rules) {
        if (rule.tag !== undefined ? tags.has(rule.tag) : [...tags].some((tag) => rule.glob.test(tag))) return false;
      }
    }
    return true;
  };
}
