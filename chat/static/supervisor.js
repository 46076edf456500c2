// Supervisor dashboard: live queue load, alerts, an hour's chart, the specialist roster
// (live state, load, set away, profiles), members' feedback by week, transcripts read with
// a reason, and the audit log (filtered, paged, exported). Each panel is a module in
// supervisor/.

import { api } from './client/http.js';
import { auditPanel } from './supervisor/audit.js';
import { chartPanel } from './supervisor/chart.js';
import { conversationsPanel } from './supervisor/conversations.js';
import { boundariesPanel } from './supervisor/boundaries.js';
import { feedbackPanel } from './supervisor/feedback.js';
import { specialistsPanel } from './supervisor/specialists.js';
import { suspensionsPanel } from './supervisor/suspensions.js';
import { statsPanel } from './supervisor/stats.js';
import { transcriptPanel } from './supervisor/transcript.js';
import { monitorPanel } from './supervisor/monitor.js';
import { getToken } from './client/tokens.js';
import { startPage } from './ui/chrome.js';
import { loadLanguage, t } from './ui/i18n.js';
import { $ } from './ui/dom.js';
import { transferDialog } from './ui/transfer-dialog.js';

const ROLE = 'supervisor';
const SAMPLE_EVERY_MS = 15000; // repeat the last value so the chart's line runs up to "now"

// Without a token the page goes to /login at once; with one, the language is loaded before
// anything renders text.
if (getToken(ROLE)) await loadLanguage();
const page = startPage(ROLE);
if (page) main(page);

/** @param {import('./ui/chrome.js').Page} page */
function main({ token, client, notice }) {
  /** @type {(path: string, options?: import('./client/http.js').ApiOptions) => Promise<any>} */
  const call = async (path, options) => {
    try {
      return await api(token, path, options);
    } catch (err) {
      if (/** @type {{status?: number}} */ (err).status === 401) client.emit('auth_failed', {});
      throw err;
    }
  };

  /** @param {string} path */
  const download = async (path) => {
    const res = await fetch(path, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
    if (res.status === 401) client.emit('auth_failed', {});
    if (!res.ok) throw new Error(((await res.json().catch(() => null)) || {}).error || `HTTP ${res.status}`);
    return res.blob();
  };

  const monitor = monitorPanel(client, notice, $('[data-testid="conversations-panel"]'));
  const stats = statsPanel(
    (alertId) => client.send({ type: 'ack_alert', alert_id: alertId }),
    (conversationId) => monitor.open(conversationId),
  );
  const chart = chartPanel();
  const feedback = feedbackPanel(call);
  const specialists = specialistsPanel(call, notice, feedback.specialists);
  const audit = auditPanel(call, download);
  const transcript = transcriptPanel(call, audit.load);
  // A supervisor may transfer any active conversation (PRODUCT.md §9; audited by the server).
  /** @type {Set<string>} conversations this page asked to transfer */
  const transferring = new Set();
  const handOn = transferDialog({
    call,
    send: (frame) => Boolean(client.send(frame)),
    onSent: ({ conversationId }) => {
      transferring.add(conversationId);
      notice(t('transfer.asking'));
    },
  });
  const conversations = conversationsPanel(
    call,
    transcript.prefill,
    (conversationId) => monitor.open(conversationId),
    (conversationId, member, specialist) => handOn.open(conversationId, handOn.describe(member, specialist)),
  );
  client.on('transfer', (f) => {
    if (!transferring.has(f.conversation_id)) return;
    notice(t('transfer.asked'));
    conversations.load();
  });
  // Any transfer beginning or ending, whoever asked: the rows say so (PRODUCT.md §9), and the
  // roster's loads follow the hand-over.
  client.on('transfer_status', () => {
    conversations.load();
    specialists.handedOver();
  });
  client.on('transfer_failed', (f) => {
    transferring.delete(f.conversation_id);
    notice(t(`transfer.failed_${f.reason}`, { name: t('transfer.they') }));
  });
  const boundaries = boundariesPanel(call, notice, transcript.prefill);
  suspensionsPanel(call);

  client.on('queue_stats', (f) => {
    // The answer to watch_queues (it carries its ref), after every welcome: from here on
    // every transfer_status reaches this page, so the list is read again now; a transfer
    // that began or ended between the first load and the subscription is not missed.
    if (f.ref) conversations.load();
    const at = stats.render(f);
    chart.add(at, f.waiting ?? 0, f.longest_wait_s ?? 0);
    specialists.countsChanged(f.specialists || {}, f.active_conversations ?? 0);
  });
  client.on('alert_acked', (f) => notice(t('sup.alert_acked', { name: f.by?.name || t('sup.a_supervisor') })));
  client.on('error', (e) => {
    if (e.request && e.request.type === 'transfer') {
      transferring.delete(e.request.conversation_id);
      notice(t('transfer.refused', { error: e.message || e.code || '' }));
    } else if (e.message) notice(e.message);
  });
  client.on('forbidden', () => notice(t('common.forbidden')));

  setInterval(() => {
    const now = stats.now();
    if (now) chart.repeat(now.waiting, now.longest);
  }, SAMPLE_EVERY_MS);
  setInterval(stats.tickLongest, 1000);

  client.subscribe({ type: 'watch_queues' });
  client.connect();
  chart.draw();
  chart.prefill(call);
  specialists.load();
  conversations.load();
  feedback.load();
  boundaries.load();
  audit.load();
}
