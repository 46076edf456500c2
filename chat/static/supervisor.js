// Supervisor dashboard: live queue load, alerts, an hour's chart, specialist profiles,
// transcripts read with a reason, and the audit log those reads write.

import { api, formatDateTime, formatDuration, formatTime, PeerChatClient, requireToken } from '/static/peerchat.js';
import { $, announce, bindAuthFailure, bindConnectionStatus, bindSignOut, clear, h, s, show } from '/static/ui.js';

const ROLE = 'supervisor';
const HOUR_MS = 3600 * 1000;
const SAMPLE_EVERY_MS = 15000; // repeat the last value so the line runs up to "now"
const COALESCE_MS = 5000; // several queue_stats within this window make one sample

const token = requireToken(ROLE);
if (token) main(token);

function main(token) {
  const client = new PeerChatClient(token);
  const notice = (text) => announce($('#notice'), text);
  bindConnectionStatus(client, $('#connection-status'));
  bindSignOut($('#sign-out'), ROLE, client);
  bindAuthFailure(client, ROLE);

  const call = async (path, options) => {
    try {
      return await api(token, path, options);
    } catch (err) {
      if (err.status === 401) client.emit('auth_failed', {});
      throw err;
    }
  };

  // ------------------------------------------------------------ live stats

  let latest = null;
  let latestAt = 0;
  let lastCounts = '';
  const alertKeys = new Set();

  function renderStats(stats) {
    latest = stats;
    latestAt = Date.now();
    $('#stat-waiting').textContent = String(stats.waiting ?? 0);
    $('#stat-active').textContent = String(stats.active_conversations ?? 0);
    const sp = stats.specialists || {};
    $('#stat-available').textContent = String(sp.available ?? 0);
    $('#stat-busy').textContent = String(sp.busy ?? 0);
    $('#stat-away').textContent = String(sp.away ?? 0);
    tickLongest();
    $('#stats-updated').textContent = `Updated ${formatTime(new Date().toISOString())}`;
    renderByTag(stats.by_tag || {});
    renderAlerts(Array.isArray(stats.alerts) ? stats.alerts : []);
    addSample(latestAt, stats.waiting ?? 0, stats.longest_wait_s ?? 0);
    const counts = JSON.stringify(sp);
    if (counts !== lastCounts) {
      lastCounts = counts;
      scheduleSpecialists();
    }
  }

  // longest_wait_s is a snapshot; while people wait it grows between frames.
  function tickLongest() {
    if (!latest) return;
    const extra = latest.waiting ? Math.floor((Date.now() - latestAt) / 1000) : 0;
    $('#stat-longest').textContent = latest.waiting ? formatDuration((latest.longest_wait_s || 0) + extra) : '–';
  }

  function renderByTag(byTag) {
    const body = clear($('#by-tag'));
    const rows = Object.entries(byTag).sort((a, b) => (b[1].waiting || 0) - (a[1].waiting || 0) || a[0].localeCompare(b[0]));
    for (const [tag, load] of rows) {
      body.append(
        h(
          'tr',
          { testid: 'by-tag-row', dataset: { tag } },
          h('th', { scope: 'row' }, tag),
          h('td', { testid: 'by-tag-waiting' }, String(load.waiting ?? 0)),
          h('td', {}, formatDuration(load.longest_wait_s)),
        ),
      );
    }
    show($('#by-tag-empty'), rows.length === 0);
  }

  function renderAlerts(alerts) {
    const list = $('#alerts');
    const sorted = [...alerts].sort((a, b) => (a.kind === 'urgent_request' ? 0 : 1) - (b.kind === 'urgent_request' ? 0 : 1) || (b.waited_s || 0) - (a.waited_s || 0));
    const keys = new Set(sorted.map((a) => `${a.kind}:${a.request_id}`));
    // Rebuild, but only when the set changed, so the live region announces new alerts once.
    if (keys.size === alertKeys.size && [...keys].every((k) => alertKeys.has(k))) {
      updateAlertTimes(sorted);
      return;
    }
    alertKeys.clear();
    for (const k of keys) alertKeys.add(k);
    clear(list);
    for (const a of sorted) {
      const urgent = a.kind === 'urgent_request';
      const what = urgent ? 'Urgent request' : 'Long wait';
      const topics = a.tags && a.tags.length ? a.tags.join(', ') : 'no topics';
      list.append(
        h(
          'li',
          { class: ['alert', urgent && 'urgent'], testid: 'alert', dataset: { kind: a.kind, requestId: a.request_id } },
          h('strong', {}, what),
          ` · ${topics} · waiting `,
          h('span', { class: 'alert-waited' }, formatDuration(a.waited_s)),
          h('span', { class: 'hint' }, ` · request ${String(a.request_id).slice(0, 8)}`),
        ),
      );
    }
    show($('#alerts-empty'), sorted.length === 0);
  }

  function updateAlertTimes(alerts) {
    for (const a of alerts) {
      for (const li of $('#alerts').children) {
        if (li.dataset.kind === a.kind && li.dataset.requestId === a.request_id) {
          li.querySelector('.alert-waited').textContent = formatDuration(a.waited_s);
        }
      }
    }
  }

  // ------------------------------------------------------------ chart

  let samples = []; // {t, waiting, longest}

  function addSample(t, waiting, longest) {
    const last = samples[samples.length - 1];
    if (last && t - last.t < COALESCE_MS && last.live) {
      last.waiting = waiting;
      last.longest = longest;
    } else {
      samples.push({ t, waiting, longest, live: true });
    }
    prune();
    drawCharts();
  }

  function prune() {
    const since = Date.now() - HOUR_MS;
    samples = samples.filter((x) => x.t >= since);
  }

  async function prefillHistory() {
    try {
      const data = await call('/api/stats/history');
      const first = samples.length ? samples[0].t : Infinity;
      const old = (data && Array.isArray(data.samples) ? data.samples : [])
        .map((x) => ({ t: Date.parse(x.at), waiting: Number(x.waiting) || 0, longest: Number(x.longest_wait_s) || 0 }))
        .filter((x) => Number.isFinite(x.t) && x.t < first)
        .sort((a, b) => a.t - b.t);
      samples = [...old, ...samples];
      prune();
      drawCharts();
    } catch {
      /* the live stream fills the chart on its own */
    }
  }

  function drawChart(svg, desc, key, toUnits, unitLabel, title) {
    const W = 600;
    const H = 180;
    const left = 44;
    const right = 10;
    const top = 12;
    const bottom = 28;
    const now = Date.now();
    const from = now - HOUR_MS;
    const values = samples.map((x) => toUnits(x[key]));
    const max = Math.max(1, ...values);
    const niceMax = max <= 5 ? Math.ceil(max) : Math.ceil(max / 5) * 5;
    const x = (t) => left + ((t - from) / HOUR_MS) * (W - left - right);
    const y = (v) => top + (1 - v / niceMax) * (H - top - bottom);
    clear(svg);
    svg.append(s('title', { text: title }));
    for (const frac of [0, 0.5, 1]) {
      const v = niceMax * frac;
      svg.append(
        s('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'grid' }),
        s('text', { x: left - 6, y: y(v) + 5, class: 'axis-label', 'text-anchor': 'end', text: Number.isInteger(v) ? v : v.toFixed(1) }),
      );
    }
    for (const [mins, anchor] of [[60, 'start'], [30, 'middle'], [0, 'end']]) {
      svg.append(s('text', { x: x(now - mins * 60000), y: H - 6, class: 'axis-label', 'text-anchor': anchor, text: mins ? `−${mins} min` : 'now' }));
    }
    if (samples.length) {
      // A step line: each value holds until the next sample, and the last one until now.
      const pts = [];
      samples.forEach((p, i) => {
        const v = toUnits(p[key]);
        if (i > 0) pts.push(`${x(p.t).toFixed(1)},${y(toUnits(samples[i - 1][key])).toFixed(1)}`);
        pts.push(`${x(p.t).toFixed(1)},${y(v).toFixed(1)}`);
      });
      pts.push(`${x(now).toFixed(1)},${y(values[values.length - 1]).toFixed(1)}`);
      svg.append(s('polyline', { points: pts.join(' '), class: `series series-${key}` }));
    }
    const current = values.length ? values[values.length - 1] : 0;
    const peak = values.length ? Math.max(...values) : 0;
    const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
    desc.textContent = `Now ${fmt(current)} ${unitLabel}; highest in the last hour ${fmt(peak)} ${unitLabel}.`;
  }

  function drawCharts() {
    drawChart($('#chart-waiting'), $('#chart-waiting-desc'), 'waiting', (v) => v, 'waiting', 'People waiting over the last hour');
    drawChart($('#chart-wait'), $('#chart-wait-desc'), 'longest', (v) => v / 60, 'min', 'Longest wait over the last hour, in minutes');
  }

  setInterval(() => {
    if (latest) {
      const extra = latest.waiting ? Math.floor((Date.now() - latestAt) / 1000) : 0;
      samples.push({ t: Date.now(), waiting: latest.waiting || 0, longest: (latest.longest_wait_s || 0) + extra, live: false });
      prune();
      drawCharts();
    }
  }, SAMPLE_EVERY_MS);
  setInterval(tickLongest, 1000);

  // ------------------------------------------------------------ specialists

  let specialistsTimer = null;
  let editing = null; // the specialist being edited
  let editOpener = null;

  function scheduleSpecialists() {
    clearTimeout(specialistsTimer);
    specialistsTimer = setTimeout(loadSpecialists, 1000);
  }

  async function loadSpecialists() {
    clearTimeout(specialistsTimer);
    const error = $('#specialists-error');
    try {
      const list = await call('/api/specialists');
      error.textContent = '';
      renderSpecialists(Array.isArray(list) ? list : []);
    } catch (err) {
      error.textContent = `Could not load specialists: ${err.message}`;
    }
    specialistsTimer = setTimeout(loadSpecialists, 30000);
  }

  function renderSpecialists(list) {
    const body = $('#specialists');
    const focusedId = body.contains(document.activeElement) ? document.activeElement.dataset.specialistId : null;
    clear(body);
    list.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const sp of list) {
      const edit = h('button', { type: 'button', testid: 'edit-specialist', dataset: { specialistId: sp.id } }, 'Edit');
      edit.setAttribute('aria-label', `Edit ${sp.name}`);
      edit.addEventListener('click', () => openEditor(sp, edit));
      body.append(
        h(
          'tr',
          { testid: 'specialist-row', dataset: { specialistId: sp.id, status: sp.status || 'offline' } },
          h('th', { scope: 'row' }, String(sp.name || sp.id)),
          h('td', { testid: 'specialist-status' }, h('span', { class: ['status-pill', `status-${sp.status || 'offline'}`] }, sp.status || 'offline')),
          h('td', {}, `${sp.active_chats ?? 0} / ${sp.max_chats ?? '–'}`),
          h('td', {}, (sp.tags || []).join(', ') || '–'),
          h('td', {}, (sp.languages || []).join(', ') || '–'),
          h('td', {}, edit),
        ),
      );
      if (focusedId === sp.id) edit.focus();
    }
  }

  const form = $('#specialist-form');
  const splitList = (text) => text.split(',').map((w) => w.trim()).filter(Boolean);

  function openEditor(sp, opener) {
    editing = sp;
    editOpener = opener;
    $('#edit-id').textContent = sp.id;
    $('#edit-heading').textContent = `Edit ${sp.name || sp.id}`;
    $('#edit-name').value = sp.name || '';
    $('#edit-tags').value = (sp.tags || []).join(', ');
    $('#edit-languages').value = (sp.languages || []).join(', ');
    $('#edit-max').value = String(sp.max_chats ?? 3);
    $('#edit-error').textContent = '';
    show(form, true);
    $('#edit-name').focus();
  }

  function closeEditor() {
    show(form, false);
    const id = editing && editing.id;
    editing = null;
    const again = id && $('#specialists').querySelector(`button[data-specialist-id="${CSS.escape(id)}"]`);
    (again || editOpener || $('#specialists-heading')).focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!editing) return;
    const error = $('#edit-error');
    const body = {
      name: $('#edit-name').value.trim(),
      tags: splitList($('#edit-tags').value),
      languages: splitList($('#edit-languages').value),
      max_chats: Number($('#edit-max').value),
    };
    if (!body.name) return void (error.textContent = 'A name is required.');
    if (!body.languages.length) return void (error.textContent = 'At least one language is required.');
    if (!Number.isInteger(body.max_chats) || body.max_chats < 1 || body.max_chats > 20) {
      return void (error.textContent = 'Maximum chats must be a whole number from 1 to 20.');
    }
    try {
      await call(`/api/specialists/${encodeURIComponent(editing.id)}`, { method: 'PUT', body });
      notice(`Saved ${body.name}.`);
      await loadSpecialists();
      closeEditor();
    } catch (err) {
      error.textContent = `Could not save: ${err.message}`;
    }
  });
  $('#edit-cancel').addEventListener('click', closeEditor);
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') closeEditor();
  });
  $('#specialists-refresh').addEventListener('click', loadSpecialists);

  // ------------------------------------------------------------ transcripts and audit

  $('#transcript-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('#transcript-id').value.trim();
    const reason = $('#transcript-reason').value.trim();
    const error = $('#transcript-error');
    error.textContent = '';
    if (!id) return void (error.textContent = 'Enter a conversation id.');
    if (!reason) return void (error.textContent = 'A reason is required to read a transcript.');
    try {
      // The reason goes in a header, not the URL: proxies log query strings (PRODUCT.md §6).
      // Percent-encoded, as header values carry only ASCII safely; the server decodes it.
      const data = await call(`/api/conversations/${encodeURIComponent(id)}/messages`, {
        headers: { 'X-Peerchat-Reason': encodeURIComponent(reason) },
      });
      renderTranscript(data);
    } catch (err) {
      show($('#transcript-result'), false);
      error.textContent = err.status === 404 ? 'No conversation with that id.' : `Could not read the transcript: ${err.message}`;
    }
    loadAudit();
  });

  function renderTranscript(data) {
    const list = clear($('#transcript-messages'));
    const messages = data && Array.isArray(data.messages) ? data.messages : [];
    for (const m of messages) {
      const sender = m.sender || {};
      list.append(
        h(
          'li',
          { class: ['message', sender.role === 'specialist' ? 'own' : 'peer'], testid: 'transcript-message', dataset: { seq: m.seq } },
          h('span', { class: 'sender' }, `${sender.name || '?'} (${sender.role || '?'})`),
          h('p', { class: 'body' }, typeof m.body === 'string' ? m.body : ''),
          h('span', { class: 'meta' }, h('time', { datetime: m.sent_at || '' }, formatDateTime(m.sent_at)), ` · #${m.seq}`),
        ),
      );
    }
    const title = $('#transcript-title');
    title.textContent = `Conversation ${data.conversation_id}: ${messages.length} message${messages.length === 1 ? '' : 's'}`;
    show($('#transcript-result'), true);
    title.focus();
  }

  async function loadAudit() {
    const error = $('#audit-error');
    try {
      const data = await call('/api/audit');
      error.textContent = '';
      const body = clear($('#audit'));
      for (const e of data && Array.isArray(data.entries) ? data.entries : []) {
        body.append(
          h(
            'tr',
            { testid: 'audit-row' },
            h('td', {}, h('time', { datetime: e.at || '' }, formatDateTime(e.at))),
            h('td', {}, `${e.actor_name || ''} (${e.actor_id || ''})`),
            h('td', {}, String(e.action || 'read_transcript').replace(/_/g, ' ')),
            // What was acted on: the conversation, or else the target (a specialist's id, …).
            h('td', { class: 'mono' }, String(e.conversation_id || e.target || '')),
            h('td', { testid: 'audit-reason' }, String(e.reason || '')),
          ),
        );
      }
    } catch (err) {
      error.textContent = `Could not load the audit log: ${err.message}`;
    }
  }
  $('#audit-refresh').addEventListener('click', loadAudit);

  // ------------------------------------------------------------ wiring

  client.on('welcome', (w) => {
    $('#user-name').textContent = w.user && w.user.name ? `Signed in as ${w.user.name}` : '';
  });
  client.on('queue_stats', renderStats);
  client.on('error', (e) => e.message && notice(e.message));
  client.on('forbidden', () => notice('The server refused this connection. Please sign in again.'));
  client.subscribe({ type: 'watch_queues' });
  client.connect();
  drawCharts();
  prefillHistory();
  loadSpecialists();
  loadAudit();
}
