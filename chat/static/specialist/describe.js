// How an offer or a waiting request is summed up on the specialist page.

import { t } from '../ui/i18n.js';

/**
 * "grief, family · EN", "any topic · any language"
 * @param {string[] | undefined} tags
 * @param {string | null | undefined} language
 */
export function describe(tags, language) {
  const topics = tags && tags.length ? tags.join(', ') : t('spec.any_topic');
  return `${topics} · ${language ? language.toUpperCase() : t('spec.any_language')}`;
}
