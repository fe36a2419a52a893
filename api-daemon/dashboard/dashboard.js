/*
 * order-api's dashboard: polls the API the page came from and draws it.
 * No framework, no build step, nothing fetched but the API's own routes.
 * Served with a strict Content-Security-Policy: nothing here may use
 * inline event handlers, eval, innerHTML of data, or style attributes
 * (classes, SVG attributes and the CSSOM only).
 *
 * The page keeps everything in memory; the server keeps nothing for it.
 * With --api-token-file, the token asked for on the first 401 is kept in
 * sessionStorage (this tab only) and sent as "Authorization: Bearer".
 */
'use strict';

(() => {
	const POLL_MS = 1500;
	const WINDOW_S = 300;		/* the throughput graph's span */
	const TOKEN_KEY = 'order-processing.token';
	const STATUSES = ['Pending', 'Processing', 'Completed', 'Cancelled'];
	const SVG_NS = 'http://www.w3.org/2000/svg';
	const $ = (id) => document.getElementById(id);

	/* The loops whose last poll failed, and why (the banner). */
	const failing = new Map();

	/* ---- the token, asked for once per tab ---- */

	let tokenWait = null;

	function storedToken() {
		try {
			return sessionStorage.getItem(TOKEN_KEY) || '';
		} catch (e) {
			return '';
		}
	}

	function setToken(t) {
		try {
			if (t)
				sessionStorage.setItem(TOKEN_KEY, t);
			else
				sessionStorage.removeItem(TOKEN_KEY);
		} catch (e) {
			/* storage refused: the token lives until the page goes */
		}
		memoryToken = t;
	}
	let memoryToken = storedToken();

	/* One prompt at a time; every request that got a 401 waits for it. */
	function askToken(refused) {
		if (tokenWait !== null)
			return tokenWait;
		tokenWait = new Promise((resolve) => {
			const dialog = $('token-dialog');
			const form = $('token-form');
			const input = $('token-input');
			const err = $('token-error');

			err.textContent = refused ?
			    'That token was not accepted. Try again.' : '';
			err.hidden = !refused;
			input.value = '';
			const submitted = (ev) => {
				ev.preventDefault();
				const t = input.value.trim();
				if (t === '')
					return;
				form.removeEventListener('submit', submitted);
				setToken(t);
				dialog.close();
				tokenWait = null;
				resolve();
			};
			form.addEventListener('submit', submitted);
			dialog.showModal();
			input.focus();
		});
		return tokenWait;
	}
	/* The prompt stays until a token is given: Escape does not close it. */
	$('token-dialog').addEventListener('cancel', (ev) => ev.preventDefault());

	/*
	 * fetch on this origin with the token; a 401 asks for one (again, if
	 * the one sent was refused) and retries. Other statuses are the
	 * caller's.
	 */
	async function api(path, options = {}) {
		for (;;) {
			const headers = Object.assign({ Accept: 'application/json' },
			    options.headers || {});
			const sent = memoryToken;
			if (sent)
				headers.Authorization = 'Bearer ' + sent;
			const res = await fetch(path, Object.assign({}, options, {
				headers, cache: 'no-store', credentials: 'omit',
				redirect: 'error',
			}));
			if (res.status !== 401)
				return res;
			/* order-api answers: whatever failed before is past. */
			failing.clear();
			setBanner('');
			if (sent && sent === memoryToken)
				setToken('');
			await askToken(Boolean(sent));
		}
	}

	async function json(res) {
		try {
			return await res.json();
		} catch (e) {
			return null;
		}
	}

	/* ---- formatting ---- */

	const numberFmt = new Intl.NumberFormat();

	function ago(seconds) {
		if (seconds < 1)
			return 'under a second';
		if (seconds < 60)
			return Math.max(0, Math.round(seconds)) + ' s';
		if (seconds < 3600)
			return Math.round(seconds / 60) + ' min';
		if (seconds < 172800)
			return Math.round(seconds / 3600) + ' h';
		return Math.round(seconds / 86400) + ' days';
	}

	/* A time of today as 21:05:09, another day's with its date too. */
	function when(iso) {
		if (!iso)
			return '';
		const d = new Date(iso);
		if (isNaN(d.getTime()))
			return iso;
		const time = d.toLocaleTimeString(undefined, { hour12: false });
		if (d.toDateString() === new Date().toDateString())
			return time;
		return d.toLocaleDateString() + ' ' + time;
	}

	/* The graph's span: the data's, from one minute to WINDOW_S. */
	function spanLabel(s) {
		return s >= 60 ? (s / 60).toFixed(s % 60 ? 1 : 0) + ' min ago' :
		    Math.round(s) + ' s ago';
	}

	function rate(v) {
		if (!isFinite(v))
			return '\u2013';
		return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
	}

	function el(tag, cls, text) {
		const e = document.createElement(tag);
		if (cls)
			e.className = cls;
		if (text !== undefined)
			e.textContent = text;
		return e;
	}

	function svg(tag, attrs, text) {
		const e = document.createElementNS(SVG_NS, tag);
		for (const [k, v] of Object.entries(attrs || {}))
			e.setAttribute(k, String(v));
		if (text !== undefined)
			e.textContent = text;
		return e;
	}

	function statusBadge(status) {
		return el('span', 'status st-' + status, status);
	}

	function setBanner(text) {
		const b = $('banner');
		b.textContent = text;
		b.hidden = text === '';
	}

	/* ---- Prometheus text: name{labels} value ---- */

	function parseProm(text) {
		const samples = [];
		const line = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
		const label = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
		for (const raw of text.split('\n')) {
			if (raw === '' || raw[0] === '#')
				continue;
			const m = line.exec(raw);
			if (m === null)
				continue;
			const labels = {};
			let l;
			label.lastIndex = 0;
			while ((l = label.exec(m[2] || '')) !== null)
				labels[l[1]] = l[2].replace(/\\(.)/g,
				    (_, c) => c === 'n' ? '\n' : c);
			const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ?
			    -Infinity : parseFloat(m[3]);
			samples.push({ name: m[1], labels, value: v });
		}
		return samples;
	}

	function promValue(samples, name) {
		const s = samples.find((x) => x.name === name);
		return s === undefined ? undefined : s.value;
	}

	/* ---- counts ---- */

	async function pollCounts() {
		const res = await api('/api/orders/metrics/');
		if (!res.ok)
			throw new Error('/api/orders/metrics/ answered ' + res.status);
		const m = await json(res);
		if (m === null)
			throw new Error('/api/orders/metrics/: not JSON');
		for (const st of STATUSES)
			$('count-' + st).textContent =
			    numberFmt.format(m.order_status_count[st]);
		document.title = numberFmt.format(m.order_status_count.Pending) +
		    ' pending \u00b7 order-processing';
		$('count-total').textContent = numberFmt.format(m.total_orders);
		$('avg-time').textContent = m.total_orders_processed > 0 ?
		    m.average_processing_time_seconds.toFixed(2) + ' s' : '\u2013';
	}

	/* ---- readiness ---- */

	async function pollReady() {
		const res = await fetch('/readyz', { cache: 'no-store',
			credentials: 'omit' });
		const b = await json(res);
		const pill = $('ready');
		if (res.status === 200) {
			pill.dataset.state = 'ready';
			pill.textContent = 'Ready';
			$('ready-reason').textContent = '';
		} else {
			pill.dataset.state = 'not-ready';
			pill.textContent = 'Not ready';
			$('ready-reason').textContent = 'not ready: ' +
			    (b && b.detail ? b.detail : 'HTTP ' + res.status);
		}
	}

	/* ---- /metrics: throughput, heartbeat, histogram ---- */

	let series = [];	/* {t (s), created, completed} */

	async function pollProm() {
		const res = await fetch('/metrics', { cache: 'no-store',
			credentials: 'omit' });
		if (!res.ok)
			throw new Error('/metrics answered ' + res.status);
		const samples = parseProm(await res.text());
		const created = promValue(samples,
		    'order_processing_orders_created_total');
		const completed = promValue(samples,
		    'order_processing_orders_completed_total');
		const t = performance.now() / 1000;

		if (created !== undefined && completed !== undefined) {
			const last = series[series.length - 1];
			/* A counter going back: another store; start afresh. */
			if (last && (created < last.created ||
			    completed < last.completed))
				series = [];
			series.push({ t, created, completed });
			while (series.length > 2 && series[1].t < t - WINDOW_S - 5)
				series.shift();
		}
		drawRates(t);
		showHeartbeat(promValue(samples,
		    'order_processing_worker_heartbeat_age_seconds'));
		drawHistogram(samples);
	}

	function showHeartbeat(age) {
		const hb = $('heartbeat');
		if (age === undefined) {
			hb.dataset.state = 'unknown';
			hb.textContent = '';
		} else if (isNaN(age)) {
			hb.dataset.state = 'none';
			hb.textContent = 'no worker heartbeat yet';
		} else {
			hb.dataset.state = age > 10 ? 'late' : 'ok';
			hb.textContent = 'worker last seen ' + ago(age) + ' ago';
		}
	}

	/* A round upper bound for an axis: 1, 2, 5 times a power of ten. */
	function niceMax(v) {
		if (!(v > 0))
			return 1;
		const p = Math.pow(10, Math.floor(Math.log10(v)));
		for (const m of [1, 2, 5, 10])
			if (m * p >= v)
				return m * p;
		return 10 * p;
	}

	function drawRates(now) {
		const graph = $('rate-graph');
		const width = Math.max(200, graph.clientWidth || 600);
		const height = 180;
		const left = 44, right = 8, top = 8, bottom = 22;
		const plotW = width - left - right, plotH = height - top - bottom;
		const created = [], completed = [];

		for (let i = 1; i < series.length; i++) {
			const a = series[i - 1], b = series[i];
			const dt = b.t - a.t;
			if (dt <= 0)
				continue;
			created.push([b.t, (b.created - a.created) / dt]);
			completed.push([b.t, (b.completed - a.completed) / dt]);
		}
		const maxCreated = Math.max(0, ...created.map((p) => p[1]));
		const maxCompleted = Math.max(0, ...completed.map((p) => p[1]));
		const yMax = niceMax(Math.max(maxCreated, maxCompleted));
		const span = series.length > 0 ? Math.min(WINDOW_S,
		    Math.max(60, Math.ceil((now - series[0].t) / 60) * 60)) : 60;
		const x = (t) => left + plotW * (1 - (now - t) / span);
		const y = (v) => top + plotH * (1 - v / yMax);
		const tick = (v) => yMax >= 5 ? v.toFixed(0) : yMax >= 1 ?
		    v.toFixed(1) : v.toFixed(2);

		graph.setAttribute('viewBox', `0 0 ${width} ${height}`);
		const grid = $('rate-grid');
		grid.replaceChildren();
		for (const f of [0, 0.5, 1]) {
			const gy = y(yMax * f);
			grid.append(svg('line', { x1: left, x2: width - right,
				y1: gy, y2: gy }));
			grid.append(svg('text', { x: left - 6, y: gy + 4,
				'text-anchor': 'end' }, tick(yMax * f)));
		}
		for (const [label, ago_s, anchor] of [[spanLabel(span), span,
		    'start'], [spanLabel(span / 2), span / 2, 'middle'],
		    ['now', 0, 'end']]) {
			grid.append(svg('text', { x: x(now - ago_s), y: height - 6,
				'text-anchor': anchor }, label));
		}
		const path = (pts) => pts.filter((p) => now - p[0] <= span)
		    .map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' +
		    y(p[1]).toFixed(1)).join(' ');
		$('rate-line-created').setAttribute('d', path(created));
		$('rate-line-completed').setAttribute('d', path(completed));
		graph.dataset.points = String(created.length);
		graph.dataset.maxCreated = String(maxCreated);
		graph.dataset.maxCompleted = String(maxCompleted);
		const lastC = created[created.length - 1];
		const lastD = completed[completed.length - 1];
		$('rate-created-now').textContent = lastC ? rate(lastC[1]) : '\u2013';
		$('rate-completed-now').textContent = lastD ? rate(lastD[1]) :
		    '\u2013';
	}

	/* A bucket's bound, short: 0.25 -> 0.25s, 2.5 -> 2.5s, 300 -> 5m. */
	function bucketLabel(le) {
		return le < 60 ? le + 's' : (le / 60) + 'm';
	}

	function drawHistogram(samples) {
		const buckets = samples
		    .filter((s) => s.name ===
		    'order_processing_processing_seconds_bucket')
		    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity :
		    parseFloat(s.labels.le), cum: s.value }))
		    .sort((a, b) => a.le - b.le);
		const count = promValue(samples,
		    'order_processing_processing_seconds_count') || 0;
		const sum = promValue(samples,
		    'order_processing_processing_seconds_sum') || 0;
		const hist = $('hist');
		const width = Math.max(200, hist.clientWidth || 600);
		const height = 180;
		const top = 16, bottom = 22, side = 4;
		const plotH = height - top - bottom;

		let prev = 0;
		const bars = buckets.map((b, i) => {
			const n = b.cum - prev;
			prev = b.cum;
			const below = isFinite(b.le);
			const bound = bucketLabel(below ? b.le :
			    buckets[i - 1] ? buckets[i - 1].le : 0);
			return { n, label: below ? bound : '>' + bound,
				title: (below ? '\u2264 ' : '> ') + bound };
		});
		const max = Math.max(1, ...bars.map((b) => b.n));
		const slot = (width - 2 * side) / Math.max(1, bars.length);

		hist.setAttribute('viewBox', `0 0 ${width} ${height}`);
		hist.replaceChildren();
		hist.append(svg('g', { class: 'grid' }));
		hist.firstChild.append(svg('line', { x1: side, x2: width - side,
			y1: top + plotH, y2: top + plotH }));
		bars.forEach((b, i) => {
			const h = b.n > 0 ? Math.max(2, plotH * b.n / max) : 0;
			const bx = side + i * slot + slot * 0.15;
			const bw = slot * 0.7;
			const bar = svg('rect', { class: 'bar', x: bx.toFixed(1),
				y: (top + plotH - h).toFixed(1), width: bw.toFixed(1),
				height: h.toFixed(1), 'data-count': b.n });
			bar.append(svg('title', {}, `${b.title}: ${b.n}`));
			hist.append(bar);
			if (b.n > 0)
				hist.append(svg('text', { class: 'bar-count',
					x: (bx + bw / 2).toFixed(1),
					y: (top + plotH - h - 4).toFixed(1),
					'text-anchor': 'middle' },
				    numberFmt.format(b.n)));
			/* Every label that fits: all, every 2nd or every 3rd. */
			if (i % (slot >= 38 ? 1 : slot >= 19 ? 2 : 3) === 0)
				hist.append(svg('text', { x: (bx + bw / 2).toFixed(1),
					y: height - 6, 'text-anchor': 'middle' },
				    b.label));
		});
		hist.dataset.total = String(count);
		$('hist-summary').textContent = count > 0 ?
		    `${numberFmt.format(count)} completed, mean ` +
		    `${(sum / count).toFixed(2)} s` : 'no order completed yet';
	}

	/* ---- the list: newest first, filtered, paged by cursor ---- */

	const list = {
		status: '',
		user: '',
		limit: 20,
		after: null,	/* this page's cursor; null: the newest */
		back: [],	/* the cursors of the pages before */
		next: null,	/* the next page's cursor */
		seq: 0,		/* the latest request; older answers are dropped */
	};

	async function loadOrders() {
		const seq = ++list.seq;
		const q = new URLSearchParams({ order: 'desc',
			limit: String(list.limit) });
		if (list.status)
			q.set('status', list.status);
		if (list.user)
			q.set('user_id', list.user);
		if (list.after)
			q.set('after', list.after);
		const res = await api('/api/orders/?' + q.toString());
		const b = await json(res);
		if (seq !== list.seq)
			return;
		const ferr = $('filter-error');
		if (res.status === 400 && b) {
			ferr.textContent = Object.entries(b).map(([k, v]) =>
			    k + ': ' + [].concat(v).join(' ')).join('; ');
			ferr.hidden = false;
			return;
		}
		if (!res.ok || b === null)
			throw new Error('/api/orders/ answered ' + res.status);
		ferr.hidden = true;
		list.next = b.next;
		renderOrders(b.results);
	}

	function renderOrders(orders) {
		const body = $('orders-body');
		const rows = orders.map((o) => {
			const tr = el('tr');
			tr.dataset.id = o.order_id;
			tr.dataset.status = o.status;
			tr.dataset.user = String(o.user_id);
			const id = el('td');
			const a = el('a', 'order-link', o.order_id);
			a.href = '#' + o.order_id;
			id.append(a);
			const st = el('td');
			st.append(statusBadge(o.status));
			const act = el('td', 'num');
			if (o.status === 'Pending') {
				const c = el('button', 'small-btn', 'Cancel');
				c.type = 'button';
				c.dataset.cancel = o.order_id;
				act.append(c);
			}
			tr.append(id, el('td', '', String(o.user_id)),
			    el('td', 'items opt', o.item_ids.join(', ')),
			    el('td', 'num', o.total_amount), st,
			    el('td', 'opt', when(o.created_at)), act);
			return tr;
		});
		body.replaceChildren(...rows);
		$('orders-empty').hidden = orders.length > 0;
		$('page-newer').disabled = list.back.length === 0;
		$('page-older').disabled = !list.next;
		$('page-info').textContent = 'page ' + (list.back.length + 1);
	}

	$('filters').addEventListener('submit', (ev) => {
		ev.preventDefault();
		list.status = $('filter-status').value;
		list.user = $('filter-user').value.trim();
		list.limit = parseInt($('page-size').value, 10) || 20;
		list.after = null;
		list.back = [];
		loadOrders().catch(showError);
	});
	for (const id of ['filter-status', 'page-size'])
		$(id).addEventListener('change', () =>
		    $('filters').requestSubmit());
	$('page-older').addEventListener('click', () => {
		if (!list.next)
			return;
		list.back.push(list.after);
		list.after = list.next;
		loadOrders().catch(showError);
	});
	$('page-newer').addEventListener('click', () => {
		if (list.back.length === 0)
			return;
		list.after = list.back.pop();
		loadOrders().catch(showError);
	});
	$('orders-body').addEventListener('click', (ev) => {
		const cancel = ev.target.closest('button[data-cancel]');
		if (cancel) {
			cancelOrder(cancel.dataset.cancel).catch(showError);
			return;
		}
		const tr = ev.target.closest('tr[data-id]');
		if (tr) {
			ev.preventDefault();
			openOrder(tr.dataset.id).then(() => $('order-panel')
			    .scrollIntoView({ block: 'nearest' })).catch(showError);
		}
	});

	/* ---- one order ---- */

	let shown = null;	/* the order in the detail panel */

	function orderMessage(text, error) {
		const m = $('order-message');
		m.textContent = text;
		m.classList.toggle('error', Boolean(error));
		m.hidden = text === '';
	}

	function showOrder(o) {
		shown = o;
		const dl = $('order-fields');
		const rows = [
			['Order', o.order_id], ['Status', null],
			['User', String(o.user_id)],
			['Items', o.item_ids.join(', ')],
			['Total', o.total_amount],
			['Created', when(o.created_at)],
			['Updated', when(o.updated_at)],
			['Completed', o.completed_at ? when(o.completed_at) :
			    '\u2013'],
		];
		dl.replaceChildren();
		for (const [k, v] of rows) {
			const dd = el('dd');
			if (k === 'Status') {
				dd.append(statusBadge(o.status));
				dd.dataset.field = 'status';
			} else {
				dd.textContent = v;
				dd.dataset.field = k.toLowerCase();
			}
			dl.append(el('dt', '', k), dd);
		}
		$('order-detail').hidden = false;
		$('order-hint').hidden = true;
		$('order-detail').dataset.id = o.order_id;
		$('order-cancel').hidden = o.status !== 'Pending';
	}

	async function openOrder(raw) {
		const id = String(raw).trim().toUpperCase();
		if (!/^(ORD)?[0-9]{1,19}$/.test(id)) {
			orderMessage('An order id is ORD123 or 123.', true);
			return;
		}
		$('order-id').value = id.startsWith('ORD') ? id : 'ORD' + id;
		const res = await api('/api/orders/' + encodeURIComponent(id) +
		    '/');
		const b = await json(res);
		if (res.status === 404) {
			$('order-detail').hidden = true;
			$('order-hint').hidden = false;
			shown = null;
			orderMessage('No order ' + $('order-id').value + '.', true);
			return;
		}
		if (!res.ok || b === null) {
			orderMessage((b && b.detail) || 'HTTP ' + res.status, true);
			return;
		}
		orderMessage('', false);
		showOrder(b);
	}

	async function cancelOrder(id) {
		const res = await api('/api/orders/' + encodeURIComponent(id) +
		    '/cancel/', { method: 'POST' });
		const b = await json(res);
		if (res.ok && b !== null) {
			showOrder(b);
			orderMessage(id + ' is cancelled.', false);
		} else {
			/* 409: it left Pending before the cancel arrived. */
			orderMessage((b && b.detail) || 'HTTP ' + res.status, true);
			await openOrder(id).catch(() => {});
			orderMessage((b && b.detail) || 'HTTP ' + res.status, true);
		}
		await Promise.allSettled([loadOrders(), pollCounts()]);
	}

	$('order-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		openOrder($('order-id').value).catch(showError);
	});
	$('order-cancel').addEventListener('click', () => {
		if (shown)
			cancelOrder(shown.order_id).catch(showError);
	});
	window.addEventListener('hashchange', () => {
		if (/^#(ORD)?[0-9]+$/.test(location.hash))
			openOrder(location.hash.slice(1)).catch(showError);
	});

	/* ---- the loops ---- */

	function showError(e) {
		setBanner('Cannot reach order-api: ' + (e && e.message ? e.message :
		    String(e)) + '. Retrying.');
	}

	/*
	 * One loop per source, each polling again POLL_MS after its answer:
	 * a token prompt holds the API's loops only, while readiness, the
	 * heartbeat and the graph (open routes) go on.
	 */
	function loop(name, fn) {
		const tick = async () => {
			try {
				await fn();
				failing.delete(name);
			} catch (e) {
				failing.set(name, e);
			}
			if (failing.size > 0)
				showError(failing.values().next().value);
			else
				setBanner('');
			if (failing.size === 0)
				$('updated').textContent = 'updated ' +
				    new Date().toLocaleTimeString(undefined,
				    { hour12: false });
			setTimeout(tick, POLL_MS);
		};
		tick();
	}

	if (/^#(ORD)?[0-9]+$/.test(location.hash))
		openOrder(location.hash.slice(1)).catch(showError);
	loop('counts', pollCounts);
	loop('metrics', pollProm);
	loop('ready', pollReady);
	/* The first page follows new orders; the others stay put. */
	loop('orders', () => list.after === null ? loadOrders() : null);
})();
