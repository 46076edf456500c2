// How an offer or a waiting request is summed up on the specialist page.

/**
 * "grief, family · EN", "any topic · any language"
 * @param {string[] | undefined} tags
 * @param {string | null | undefined} language
 */
export function describe(tags, language) {
  const topics = tags && tags.length ? tags.join(', ') : 'any topic';
  return `${topics} · ${language ? language.toUpperCase() : 'any language'}`;
}
