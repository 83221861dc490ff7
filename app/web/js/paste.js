// Pasted links: the JM search box and the Booru tags box take a link too; the server resolves it
// (POST /v1/download/url) and the download it starts goes to the Jobs list.

import { api, clientId } from "./api.js";
import { albumChoices } from "./choices.js";

/** A pasted link rather than search words or tags: a scheme, or a domain followed by a path. */
export function looksLikeLink(text) {
  return /^(https?:\/\/\S+|[a-z0-9-]+(\.[a-z0-9-]+)+\/\S*)$/i.test(text.trim());
}

// JM pages are /album/<id> and /photo/<id> on any of its domains; everything else is a booru link.
const isJmLink = (url) => /\/(album|photo)\/\d+/.test(url);

function describe(resolved) {
  switch (resolved?.kind) {
    case "jm_album": return `JM${resolved.album_id}`;
    case "jm_chapter": return `JM${resolved.album_id}, chapter ${resolved.chapter_id}`;
    case "booru_post": return `${resolved.site}: post ${resolved.post_id}`;
    case "booru_posts": return `${resolved.site}: ${resolved.tags}`;
    default: return "the link";
  }
}

/**
 * Start what `url` points at. `boorufields` are the Booru form's options (images, captions,
 * filters), sent only with a booru link; a JM link gets the saved album format and layout.
 * Resolves to the sentence to show; rejects with the server's sentence.
 */
export async function startLink(jobs, url, booruFields = {}) {
  const body = { url: url.trim(), client_id: clientId };
  let label = null;
  if (isJmLink(body.url)) {
    const choices = await albumChoices.effective(albumChoices.saved());
    Object.assign(body, await albumChoices.requestFields(choices));
    label = (title) => albumChoices.label(title, choices);
  } else {
    Object.assign(body, booruFields);
  }
  const answer = await api("/v1/download/url", { method: "POST", body });
  const what = describe(answer.resolved);
  jobs.add(answer, label ? label(what) : what);
  return `${what} was added to Jobs.`;
}
