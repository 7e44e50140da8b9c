// The Parley console: talk to the bot through the real POST /, watch what the local
// stack delivers, read the history. Everything a bot or a receiver sent is untrusted:
// it is put in the page as text nodes only, and only http(s) URLs become links or media.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage;

  const state = {
    token: '',
    info: null,
    lastSeq: 0,
    conv: '',
    user: '',
    stream: null,        // the AbortController of the event stream
    load: 0,             // the conversation load in progress: a later one wins
    events: [],          // every event seen, in arrival order
    deliveries: new Map(), // webhookId -> {events: [...], last}
    chat: new Map(),     // key -> bubble element of the conversation on screen
    sent: new Map(),     // messageId -> the body POSTed, to send it again
    dead: [],            // the channel's dead letters, as last listed
    conversations: new Set(),
    historyCursor: '',
  };

  // ---- DOM helpers: text only -------------------------------------------------------

  function el(tag, props, ...children) {
    const n = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') n.className = v;
        else if (k === 'text') n.textContent = v;
        else if (k === 'data') Object.assign(n.dataset, v);
        else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
        else n.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  // safeURL returns an absolute http(s) URL, or null: no javascript:, data: or others.
  function safeURL(u) {
    if (typeof u !== 'string' || !/^https?:\/\//i.test(u.trim())) return null;
    try {
      const x = new URL(u.trim());
      return x.protocol === 'http:' || x.protocol === 'https:' ? x.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(url, label) {
    const href = safeURL(url);
    if (!href) return el('span', { class: 'blocked', title: 'not an http(s) URL: not linked' }, label || String(url));
    return el('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow' }, label || href);
  }

  const str = (v) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
  const time = (t) => {
    const d = new Date(t);
    return !t || isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  };

  // ---- markdown: a small, safe subset ----------------------------------------------

  // inline renders **bold**, *italic* or _italic_, `code`, [text](url) and bare
  // http(s) URLs into nodes; everything else is text.
  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(__[^_\n]+__)|(\*[^*\s][^*\n]*\*)|(_[^_\s][^_\n]*_)|(\[[^\]\n]+\]\([^)\s]+\))|(https?:\/\/[^\s<>()]+)/g;

  function inline(text) {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
      const t = m[0];
      if (m[1]) out.push(el('code', null, t.slice(1, -1)));
      else if (m[2] || m[3]) out.push(el('strong', null, ...inline(t.slice(2, -2))));
      else if (m[4] || m[5]) out.push(el('em', null, ...inline(t.slice(1, -1))));
      else if (m[6]) {
        const close = t.indexOf('](');
        out.push(link(t.slice(close + 2, -1), t.slice(1, close)));
      } else out.push(link(t, t));
      last = m.index + t.length;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  function markdown(src) {
    const box = el('div', { class: 'md' });
    const lines = str(src).split(/\r?\n/);
    let list = null;
    lines.forEach((line, i) => {
      const item = /^\s*[-*]\s+(.*)$/.exec(line);
      if (item) {
        if (!list) { list = el('ul'); box.append(list); }
        list.append(el('li', null, ...inline(item[1])));
        return;
      }
      list = null;
      const h = /^(#{1,6})\s+(.*)$/.exec(line);
      if (h) { box.append(el('strong', { class: 'h' }, ...inline(h[2]))); box.append(el('br')); return; }
      box.append(...inline(line));
      if (i < lines.length - 1) box.append(el('br'));
    });
    return box;
  }

  // ---- message rendering --------------------------------------------------------

  // render draws a message of any type. act, when given, sends a value as the next
  // message (buttons, choices); history passes none and its buttons are inert.
  function render(type, payload, act) {
    const p = payload && typeof payload === 'object' ? payload : {};
    switch (type) {
      case 'text':
        return el('div', { class: 'text' }, str(p.text));
      case 'markdown':
        return markdown(p.markdown !== undefined ? p.markdown : p.text);
      case 'image': {
        const src = safeURL(p.imageUrl);
        return el('figure', { class: 'media' },
          src ? el('img', { src, alt: str(p.title) || 'image', loading: 'lazy', referrerpolicy: 'no-referrer' }) : el('div', { class: 'blocked' }, 'image: ' + str(p.imageUrl)),
          p.title ? el('figcaption', null, str(p.title)) : null);
      }
      case 'audio':
      case 'video': {
        const src = safeURL(p[type + 'Url']);
        return el('figure', { class: 'media' },
          src ? el(type, { src, controls: true, preload: 'none' }) : el('div', { class: 'blocked' }, type + ': ' + str(p[type + 'Url'])),
          el('figcaption', null, p.title ? str(p.title) + ' · ' : '', link(p[type + 'Url'], 'open')));
      }
      case 'file':
        return el('div', { class: 'file' }, el('span', { class: 'kind' }, 'file'), link(p.fileUrl, str(p.title) || str(p.fileUrl)));
      case 'location':
        return location(p);
      case 'card':
        return card(p, act);
      case 'carousel':
        return el('div', { class: 'carousel' }, ...(Array.isArray(p.items) ? p.items : []).map((c) => card(c, act)));
      case 'choice':
      case 'dropdown':
        return choice(type, p, act);
      case 'bloc':
        return el('div', { class: 'bloc' }, ...(Array.isArray(p.items) ? p.items : []).map((it) =>
          el('div', { class: 'bloc-item' }, render(it && it.type, it && it.payload, act))));
      default:
        return el('pre', { class: 'unknown' }, str(type) + ' ' + JSON.stringify(payload, null, 2));
    }
  }

  function location(p) {
    const lat = Number(p.latitude), lon = Number(p.longitude);
    const ok = Number.isFinite(lat) && Number.isFinite(lon);
    const osm = ok ? `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}` : null;
    return el('div', { class: 'location' },
      el('div', { class: 'pin' }, el('span', { class: 'kind' }, 'location'), el('strong', null, str(p.title) || 'Location')),
      p.address ? el('div', null, str(p.address)) : null,
      el('div', { class: 'coords' }, ok ? `${lat.toFixed(5)}, ${lon.toFixed(5)}` : 'no coordinates'),
      osm ? link(osm, 'Open in OpenStreetMap') : null);
  }

  function card(c, act) {
    const p = c && typeof c === 'object' ? c : {};
    const img = safeURL(p.imageUrl);
    const actions = Array.isArray(p.actions) ? p.actions : [];
    return el('div', { class: 'card' },
      img ? el('img', { src: img, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer' }) : null,
      el('div', { class: 'card-body' },
        el('div', { class: 'card-title' }, str(p.title)),
        p.subtitle ? el('div', { class: 'card-subtitle' }, str(p.subtitle)) : null),
      actions.length ? el('div', { class: 'actions' }, ...actions.map((a) => {
        const x = a && typeof a === 'object' ? a : {};
        if (x.action === 'url') return link(x.value, str(x.label) || str(x.value));
        return el('button', { type: 'button', class: 'action', disabled: !act, data: { value: str(x.value) },
          title: 'sends “' + str(x.value) + '”', onclick: (e) => act && act(str(x.value), e.currentTarget) }, str(x.label) || str(x.value));
      })) : null);
  }

  function choice(type, p, act) {
    const opts = Array.isArray(p.options) ? p.options : [];
    const box = el('div', { class: type }, el('div', { class: 'text' }, str(p.text)));
    if (type === 'dropdown') {
      const sel = el('select', { disabled: !act }, el('option', { value: '' }, 'Choose…'),
        ...opts.map((o) => el('option', { value: str(o && o.value) }, str(o && o.label) || str(o && o.value))));
      const go = el('button', { type: 'button', class: 'option', disabled: !act, onclick: () => sel.value && act(sel.value, go) }, 'Send');
      box.append(el('div', { class: 'options' }, sel, go));
    } else {
      box.append(el('div', { class: 'options' }, ...opts.map((o) => el('button', {
        type: 'button', class: 'option', disabled: !act, data: { value: str(o && o.value) },
        onclick: (e) => act && act(str(o && o.value), e.currentTarget),
      }, str(o && o.label) || str(o && o.value)))));
    }
    return box;
  }

  // ---- the API --------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + state.token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : body, cache: 'no-store' });
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    return { res, data };
  }

  function errorText(status, data) {
    const e = data && data.error;
    if (!e) return `HTTP ${status}`;
    return `${status} ${str(e.code)}: ${str(e.message)}` + (e.field ? ` (field ${str(e.field)})` : '');
  }

  // ---- connecting -------------------------------------------------------------------

  function setConn(text, cls) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'conn ' + cls;
  }

  function enable(on) {
    for (const n of document.querySelectorAll('#composer input, #composer button, #raw-send')) n.disabled = !on;
  }

  async function connect() {
    if (state.stream) state.stream.abort();
    state.token = $('token').value.trim();
    enable(false);
    if (!state.token) { setConn('type the API token', 'off'); return; }
    setConn('connecting…', 'wait');
    let r;
    try { r = await api('GET', '/_parley/console/info'); } catch (e) { setConn('the stack does not answer', 'bad'); return; }
    if (!r.res.ok) { setConn(errorText(r.res.status, r.data), 'bad'); return; }
    store.setItem('parley.token', state.token);
    state.info = r.data;
    state.lastSeq = 0;
    state.events = [];
    state.deliveries.clear();
    state.dead = [];
    state.conversations.clear();
    state.sent.clear();
    state.historyCursor = '';
    $('attempt-log').hidden = true;
    $('attempt-log').replaceChildren();
    $('dlq').tBodies[0].replaceChildren();
    $('dlq-status').textContent = '';
    $('history').replaceChildren();
    $('history-status').textContent = '';
    $('history-more').hidden = true;
    const where = state.info.inbox ? 'replies go to the built-in inbox'
      : `replies go to ${state.info.endpoint || 'the channel’s endpoint'} — shown here as the stack delivered them`;
    $('endpoint').textContent = `channel ${state.info.channel} · bot ${state.info.bot} · ${where}`;
    $('deliveries-where').textContent = state.info.inbox ? '(to the built-in inbox)' : `(to ${state.info.endpoint})`;
    const d = await api('GET', '/_parley/console/deliveries');
    if (d.res.ok) for (const ev of d.data.deliveries || []) ingest(ev, false);
    rememberConversations();
    renderDeliveries();
    enable(true);
    stream();
    await loadConversation();
    refreshDeadLetters();
  }

  // stream reads the server-sent events with fetch, which can send the token (an
  // EventSource cannot), and reconnects from the last event seen.
  async function stream() {
    const ctl = new AbortController();
    state.stream = ctl;
    let wait = 500;
    while (!ctl.signal.aborted) {
      try {
        const res = await fetch('/_parley/console/events?after=' + state.lastSeq, {
          headers: { Authorization: 'Bearer ' + state.token }, signal: ctl.signal, cache: 'no-store' });
        if (res.status === 401) { setConn('the token is not valid', 'bad'); enable(false); return; }
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        setConn('live', 'live');
        wait = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let name = 'message';
            const data = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) name = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            if (name !== 'delivery' || !data.length) continue;
            let ev = null;
            try { ev = JSON.parse(data.join('\n')); } catch (_) { continue; /* not JSON: skipped */ }
            try { ingest(ev, true); } catch (e) { reportError(e); /* a bug here must show, not end the stream */ }
          }
        }
      } catch (_) {
        if (ctl.signal.aborted) return;
      }
      if (ctl.signal.aborted) return;
      setConn('reconnecting…', 'wait');
      await new Promise((ok) => setTimeout(ok, wait));
      wait = Math.min(wait * 2, 10000);
    }
  }

  // ingest takes one POST attempt the stack made: the Deliveries view, and the chat
  // when it is the conversation on screen.
  function ingest(ev, live) {
    if (!ev || typeof ev.seq !== 'number' || ev.seq <= state.lastSeq) return;
    state.lastSeq = ev.seq;
    state.events.push(ev);
    // A page left open for days keeps what the server's ring keeps, and a little more.
    if (state.events.length > 2000) state.events.splice(0, 500);
    if (state.deliveries.size > 1000) {
      for (const id of [...state.deliveries.keys()].slice(0, 250)) state.deliveries.delete(id);
    }
    let d = state.deliveries.get(ev.webhookId);
    if (!d) { d = { events: [] }; state.deliveries.set(ev.webhookId, d); }
    d.events.push(ev);
    d.last = ev;
    if (ev.conversationId && !state.conversations.has(ev.conversationId)) {
      state.conversations.add(ev.conversationId);
      if (live) rememberConversations();
    }
    if (ev.conversationId === state.conv) botBubble(ev);
    if (live) {
      scheduleDeliveries();
      if (ev.attempt && ev.attempt.outcome !== 'delivered') scheduleDeadLetters();
    }
  }

  // ---- chat -------------------------------------------------------------------------

  function appendBubble(b) {
    const empty = $('messages').querySelector('.empty');
    if (empty) empty.remove();
    $('messages').append(b);
    scrollDown();
  }

  function scrollDown() {
    const m = $('messages');
    m.scrollTop = m.scrollHeight;
  }

  function statusOf(d) {
    const a = d.last && d.last.attempt;
    if (!a) return 'unknown';
    if (a.outcome === 'delivered') return 'delivered';
    if (a.outcome === 'permanent') return 'dead-lettered';
    if (a.outcome === 'gone') return 'endpoint gone';
    if (isDead(d.last)) return 'dead-lettered';
    return 'retrying';
  }

  function isDead(ev) {
    return state.dead.some((m) => m.job && m.job.conversationId === ev.conversationId &&
      m.job.message && m.job.message.messageId === ev.inReplyTo);
  }

  function attemptText(a) {
    if (!a) return '';
    const code = a.status ? `HTTP ${a.status}` : 'no answer';
    const ms = typeof a.latencyMs === 'number' ? `${a.latencyMs.toFixed(1)} ms` : '';
    return a.outcome === 'delivered' ? `${code} in ${ms}` : `${code}${a.reason ? ' — ' + a.reason : ''}${ms ? ' · ' + ms : ''}`;
  }

  function botMeta(ev) {
    const d = state.deliveries.get(ev.webhookId) || { last: ev, events: [ev] };
    const st = statusOf(d);
    const parts = [];
    if (ev.inReplyTo) parts.push(`reply ${ev.index}/${ev.count} to ${ev.inReplyTo}`);
    else parts.push('pushed');
    const n = d.events.length;
    parts.push(`${st} (${attemptText(d.last.attempt)})${n > 1 ? ` · ${n} POSTs` : ''}`);
    if (state.info && !state.info.inbox && state.info.endpoint) parts.push('→ ' + state.info.endpoint.replace(/^https?:\/\//, ''));
    return { text: parts.join(' · '), status: st };
  }

  function botBubble(ev) {
    const key = 'b:' + ev.webhookId;
    const m = ev.message && typeof ev.message === 'object' ? ev.message : { type: 'text', payload: { text: str(ev.message) } };
    const meta = botMeta(ev);
    let b = state.chat.get(key);
    if (!b) {
      b = el('div', { class: 'bubble bot', data: { webhookId: ev.webhookId, type: str(m.type) } },
        el('div', { class: 'body' }, render(m.type, m.payload, sendValue)),
        el('div', { class: 'meta' }));
      state.chat.set(key, b);
      appendBubble(b);
    }
    b.dataset.status = meta.status;
    b.querySelector('.meta').textContent = meta.text;
  }

  // refreshBots updates the status lines once the dead letters are known.
  function refreshBots() {
    for (const [key, b] of state.chat) {
      if (!key.startsWith('b:')) continue;
      const d = state.deliveries.get(key.slice(2));
      if (d && d.last) botBubble(d.last);
    }
  }

  function userBubble(key, type, payload, resend) {
    let b = state.chat.get(key);
    if (!b) {
      b = el('div', { class: 'bubble user', data: { type: str(type) } },
        el('div', { class: 'body' }, render(type, payload, null)),
        el('div', { class: 'meta' }, el('span', { class: 'status' }),
          resend ? el('button', { type: 'button', class: 'resend', title: 'POST the same body again: the same messageId',
            onclick: resend }, 'send again') : null));
      state.chat.set(key, b);
      appendBubble(b);
    }
    return b;
  }

  function setStatus(b, text, cls) {
    const s = b.querySelector('.status');
    s.textContent = text;
    b.dataset.status = cls;
  }

  function newId(prefix) {
    const r = new Uint8Array(5);
    crypto.getRandomValues(r);
    return prefix + Date.now().toString(36) + '-' + Array.from(r, (x) => (x % 36).toString(36)).join('');
  }

  function sendValue(value, button) {
    if (button) {
      const group = button.closest('.options, .actions');
      if (group) for (const x of group.querySelectorAll('button')) x.classList.toggle('chosen', x === button);
    }
    return sendText(value);
  }

  function sendText(text) {
    if (!text) return;
    const body = { userId: state.user, messageId: newId('m-'), conversationId: state.conv, type: 'text', text };
    return post(JSON.stringify(body), body);
  }

  // post sends a body through the real POST / and shows its answer on the message.
  async function post(raw, body) {
    const id = body && typeof body.messageId === 'string' ? body.messageId : newId('raw-');
    const key = 'u:' + id;
    const type = body && typeof body.type === 'string' ? body.type : 'text';
    const payload = body && body.payload && typeof body.payload === 'object' ? body.payload : { text: body && typeof body.text === 'string' ? body.text : raw };
    const elsewhere = body && typeof body.conversationId === 'string' && body.conversationId !== state.conv
      ? ` · conversation ${body.conversationId}` : '';
    state.sent.set(id, raw);
    const b = userBubble(key, type, payload, () => post(state.sent.get(id), body));
    setStatus(b, 'sending…', 'sending');
    try {
      const { res, data } = await api('POST', '/', raw);
      if (res.ok && res.headers.get('Idempotent-Replayed') === 'true') setStatus(b, `200 replayed (Idempotent-Replayed): the same answer as the first time; the bot does not run again · ${id}${elsewhere}`, 'replayed');
      else if (res.ok) setStatus(b, `200 accepted · ${id}${elsewhere}`, 'accepted');
      else setStatus(b, 'rejected: ' + errorText(res.status, data) + elsewhere, 'rejected');
    } catch (e) {
      setStatus(b, 'not sent: ' + e.message, 'rejected');
    }
  }

  async function loadConversation() {
    const conv = state.conv;
    const load = ++state.load;
    state.chat.clear();
    const box = $('messages');
    box.replaceChildren();
    for (const ev of state.events) if (ev.conversationId === conv) botBubble(ev);
    if (!state.token || !conv) return;
    const { res, data } = await api('GET', `/v1/conversations/${encodeURIComponent(conv)}/messages?limit=50`);
    if (load !== state.load) return;
    if (!res.ok) {
      if (res.status !== 404) box.prepend(el('div', { class: 'note' }, 'history: ' + errorText(res.status, data)));
      else if (!box.querySelector('.bubble')) box.prepend(el('div', { class: 'note empty' }, `Conversation ${conv}: nothing yet. Say something.`));
      return;
    }
    // The history comes first, in its order; bubbles already on screen move into their
    // place, and those the history does not have yet stay after it.
    const older = document.createDocumentFragment();
    const msgs = (data.messages || []).slice().reverse();
    if (data.nextCursor) older.append(el('div', { class: 'note' }, 'Earlier messages are in the History view.'));
    for (const m of msgs) {
      if (m.direction === 'incoming') {
        const key = 'u:' + m.messageId;
        if (state.chat.has(key)) { older.append(state.chat.get(key)); continue; }
        const b = el('div', { class: 'bubble user', data: { type: str(m.type) } }, el('div', { class: 'body' }, render(m.type, m.payload, null)),
          el('div', { class: 'meta' }, el('span', { class: 'status' }, `${time(m.createdAt)} · ${str(m.messageId)}`)));
        state.chat.set(key, b);
        older.append(b);
      } else {
        const key = 'b:' + m.id;
        if (state.chat.has(key)) { older.append(state.chat.get(key)); continue; }
        const d = state.deliveries.get(m.id);
        const b = el('div', { class: 'bubble bot', data: { webhookId: str(m.id), type: str(m.type) } },
          el('div', { class: 'body' }, render(m.type, m.payload, sendValue)),
          el('div', { class: 'meta' }, d ? botMeta(d.last).text : `${time(m.createdAt)} · in reply to ${str(m.inReplyTo)}`));
        state.chat.set(key, b);
        older.append(b);
      }
    }
    box.prepend(older);
    scrollDown();
  }

  function switchConversation() {
    const conv = $('conversation').value.trim();
    if (!conv || conv === state.conv) return;
    state.conv = conv;
    store.setItem('parley.conversation', conv);
    $('history-conversation').value = conv;
    $('history').replaceChildren(); // the History view loads the new one when opened
    $('history-more').hidden = true;
    $('history-status').textContent = '';
    fillRaw();
    loadConversation();
  }

  function rememberConversations() {
    if (state.conv) state.conversations.add(state.conv);
    $('conversations').replaceChildren(...[...state.conversations].map((c) => el('option', { value: c })));
  }

  function fillRaw() {
    $('raw-body').value = JSON.stringify({ userId: state.user, messageId: 'm-raw-1', conversationId: state.conv, type: 'location',
      text: 'here', payload: { latitude: 48.8584, longitude: 2.2945 } }, null, 1);
  }

  // ---- deliveries -----------------------------------------------------------------------

  let deliveriesQueued = false;
  function scheduleDeliveries() {
    if (deliveriesQueued) return;
    deliveriesQueued = true;
    requestAnimationFrame(() => { deliveriesQueued = false; renderDeliveries(); });
  }

  function renderDeliveries() {
    const rows = [...state.deliveries.entries()].sort((a, b) => b[1].last.seq - a[1].last.seq);
    $('deliveries').tBodies[0].replaceChildren(...rows.map(([id, d]) => {
      const ev = d.last;
      const st = statusOf(d);
      const type = ev.message && typeof ev.message === 'object' ? str(ev.message.type) : '';
      return el('tr', { data: { webhookId: id, status: st } },
        el('td', { class: 'time' }, time(ev.attempt && ev.attempt.at)),
        el('td', { class: 'mono' }, id),
        el('td', { class: 'mono' }, str(ev.conversationId)),
        el('td', null, type + (ev.inReplyTo ? ` · ${ev.index}/${ev.count} to ${ev.inReplyTo}` : '')),
        el('td', null, el('span', { class: 'badge ' + st.replace(/\W+/g, '-') }, st)),
        el('td', null, String(d.events.length)),
        el('td', null, attemptText(ev.attempt)),
        el('td', { class: 'buttons' },
          el('button', { type: 'button', class: 'log', onclick: () => attemptLog(id) }, 'Attempt log'),
          el('button', { type: 'button', class: 'replay', onclick: (e) => replay(id, ev.conversationId, e.currentTarget) }, 'Replay')));
    }));
    if (!rows.length) $('deliveries').tBodies[0].append(el('tr', null, el('td', { colspan: 8, class: 'note' }, 'Nothing delivered yet.')));
  }

  async function attemptLog(id) {
    const panel = $('attempt-log');
    panel.hidden = false;
    panel.replaceChildren(el('p', { class: 'note' }, 'loading the attempt log of ' + id + '…'));
    const { res, data } = await api('GET', '/v1/deliveries/' + encodeURIComponent(id));
    if (!res.ok) { panel.replaceChildren(el('p', { class: 'error' }, errorText(res.status, data))); return; }
    const seen = (state.deliveries.get(id) || { events: [] }).events;
    const rows = (list) => list.length === 0 ? [el('tr', null, el('td', { colspan: 6, class: 'note' }, 'none recorded'))] : list.map((a) => el('tr', null, el('td', null, time(a.at)), el('td', null, str(a.outcome)),
      el('td', null, a.status ? String(a.status) : '—'), el('td', null, str(a.reason)),
      el('td', null, typeof a.latencyMs === 'number' ? a.latencyMs.toFixed(1) + ' ms' : ''), el('td', { class: 'answer' }, str(a.answer))));
    const head = () => el('thead', null, el('tr', null, ...['at', 'outcome', 'status', 'reason', 'latency', 'answer'].map((h) => el('th', null, h))));
    panel.replaceChildren(
      el('h3', null, 'Attempt log of ', el('span', { class: 'mono' }, id), ': ', el('span', { class: 'badge' }, str(data.status))),
      el('p', { class: 'note' }, 'The store keeps an attempt log once an attempt failed; a message delivered at the first try is “unknown” there.'),
      el('table', { class: 'grid' }, head(), el('tbody', null, ...rows(data.attempts || []))),
      el('h3', null, 'Attempts this console saw'),
      el('table', { class: 'grid' }, head(), el('tbody', null, ...rows(seen.map((e) => e.attempt)))),
      el('button', { type: 'button', onclick: () => { panel.hidden = true; } }, 'Close'));
    panel.scrollIntoView({ block: 'nearest' });
  }

  async function replay(id, conv, button) {
    button.disabled = true;
    const { res, data } = await api('POST', `/v1/deliveries/${encodeURIComponent(id)}/replay?conversationId=${encodeURIComponent(conv)}`);
    button.disabled = false;
    button.textContent = res.ok ? 'Replay (queued)' : 'Replay';
    if (!res.ok) alertIn('attempt-log', 'replay: ' + errorText(res.status, data));
  }

  function alertIn(id, text) {
    const p = $(id);
    p.hidden = false;
    p.replaceChildren(el('p', { class: 'error' }, text));
  }

  // ---- dead letters ---------------------------------------------------------------------

  let deadTimer = 0;
  function scheduleDeadLetters() {
    clearTimeout(deadTimer);
    deadTimer = setTimeout(refreshDeadLetters, 300);
  }

  function attr(m, name) {
    const a = m.messageAttributes && m.messageAttributes[name];
    return a && typeof a.stringValue === 'string' ? a.stringValue : '';
  }

  async function refreshDeadLetters() {
    if (!state.token) return;
    const { res, data } = await api('GET', '/_parley/dlq');
    if (!res.ok) { $('dlq-status').textContent = errorText(res.status, data); return; }
    state.dead = (data.deadLetters || []).map((m) => {
      let job = null;
      try { job = JSON.parse(m.body); } catch (_) { /* shown raw */ }
      return { m, job };
    });
    const tbody = $('dlq').tBodies[0];
    tbody.replaceChildren(...state.dead.map(({ m, job }) => {
      const what = job && job.message ? `“${str(job.message.text)}” (${str(job.message.messageId)})` : job ? str(job.kind) : str(m.body).slice(0, 120);
      return el('tr', { data: { conversation: job ? str(job.conversationId) : '' } },
        el('td', null, time(attr(m, 'parley-failed-at'))),
        el('td', { class: 'mono' }, job ? str(job.conversationId) : ''),
        el('td', null, what),
        el('td', null, attr(m, 'parley-attempts')),
        el('td', { class: 'reason' }, attr(m, 'parley-failure-reason')));
    }));
    if (!state.dead.length) tbody.append(el('tr', null, el('td', { colspan: 5, class: 'note' }, 'The dead-letter queue holds nothing of this channel.')));
    $('dlq-redrive').disabled = !state.dead.length;
    renderDeliveries();
    refreshBots();
  }

  async function redrive() {
    $('dlq-redrive').disabled = true;
    const { res, data } = await api('POST', '/_parley/dlq/redrive');
    $('dlq-status').textContent = res.ok ? `redriven: ${data.redriven}; back in the queue, in order` : errorText(res.status, data);
    setTimeout(refreshDeadLetters, 200);
  }

  // ---- history ------------------------------------------------------------------------

  async function loadHistory(more) {
    const conv = $('history-conversation').value.trim();
    if (!conv || !state.token) return;
    if (!more) { state.historyCursor = ''; $('history').replaceChildren(); }
    const q = new URLSearchParams({ limit: '20' });
    if (more && state.historyCursor) q.set('cursor', state.historyCursor);
    $('history-status').textContent = 'loading…';
    const { res, data } = await api('GET', `/v1/conversations/${encodeURIComponent(conv)}/messages?${q}`);
    if (!res.ok) {
      $('history-status').textContent = errorText(res.status, data);
      $('history-more').hidden = true;
      return;
    }
    const msgs = data.messages || [];
    $('history').append(...msgs.map((m) => el('li', { class: 'entry ' + str(m.direction) },
      el('div', { class: 'meta' }, `${time(m.createdAt)} · ${m.direction === 'incoming' ? '→ ' + str(m.userId) + ' · ' + str(m.messageId)
        : '← bot · in reply to ' + str(m.inReplyTo)} · ${str(m.type)}`),
      render(m.type, m.payload, null))));
    state.historyCursor = str(data.nextCursor);
    $('history-more').hidden = !state.historyCursor;
    $('history-status').textContent = `${$('history').children.length} messages, newest first` + (state.historyCursor ? '' : ' · the beginning');
  }

  // ---- wiring ----------------------------------------------------------------------------

  function show(view) {
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t.dataset.view === view);
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + view;
    if (view === 'deliveries') { renderDeliveries(); refreshDeadLetters(); }
    if (view === 'history' && $('history').children.length === 0) loadHistory(false);
  }

  function init() {
    for (const t of document.querySelectorAll('.tab')) t.addEventListener('click', () => show(t.dataset.view));
    $('signin').addEventListener('submit', (e) => { e.preventDefault(); connect(); });
    state.conv = store.getItem('parley.conversation') || newId('c-');
    state.user = store.getItem('parley.user') || 'u1';
    $('conversation').value = state.conv;
    $('history-conversation').value = state.conv;
    $('user').value = state.user;
    fillRaw();
    $('conversation').addEventListener('change', switchConversation);
    $('new-conversation').addEventListener('click', () => { $('conversation').value = newId('c-'); switchConversation(); rememberConversations(); });
    $('user').addEventListener('change', () => {
      state.user = $('user').value.trim() || 'u1';
      store.setItem('parley.user', state.user);
      fillRaw();
    });
    $('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('text');
      const text = t.value;
      if (!text.trim()) return;
      t.value = '';
      sendText(text);
    });
    $('raw-send').addEventListener('click', () => {
      const raw = $('raw-body').value;
      let body = null;
      try { body = JSON.parse(raw); } catch (_) { /* sent anyway: the API says what is wrong */ }
      post(raw, body && typeof body === 'object' ? body : null);
    });
    $('dlq-refresh').addEventListener('click', refreshDeadLetters);
    $('dlq-redrive').addEventListener('click', redrive);
    $('history-form').addEventListener('submit', (e) => { e.preventDefault(); loadHistory(false); });
    $('history-more').addEventListener('click', () => loadHistory(true));
    renderDeliveries();
    const saved = store.getItem('parley.token');
    if (saved) { $('token').value = saved; connect(); }
  }

  init();
})();
