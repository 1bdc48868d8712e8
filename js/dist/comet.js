/*! cometbox client 0.1.0 | Apache-2.0 | built from js/src by js/build.mjs: do not edit */
(function (global) {
'use strict'
function backoff(attempt, min, max, random = Math.random) {
const cap = Math.min(max, min * Math.pow(2, Math.min(attempt, 30)))
return Math.floor(random() * cap)
}
function parseId(id) {
const m = /^(.+)-(\d+)$/.exec(id)
return m ? { epoch: m[1], seq: +m[2] } : null
}
class Cursor {
constructor(id) {
this.holds = {}
this.resets = {}
this.set(id)
}
set(id) {
const p = parseId(id)
if (!p || p.epoch !== this.epoch) this.seen = {}
this.epoch = p && p.epoch
this.seq = this.floor = p ? p.seq : -1
this.last = id || null
}
get id() {
let seq = this.seq
for (const ch in this.holds) seq = Math.min(seq, this.holds[ch].seq)
return seq < this.seq ? this.epoch + '-' + seq : this.last
}
accept(channel, id) {
const p = parseId(id)
if (!p) return true
if (p.epoch !== this.epoch) {
this.epoch = p.epoch
this.seen = {}
this.seq = this.floor = -1
}
const reset = this.resets[channel]
const seen = channel in this.seen ? this.seen[channel] : this.floor
if (p.seq <= seen && !reset) return false
this.seen[channel] = p.seq
if (p.seq > this.seq || reset) {
this.seq = p.seq
this.last = id
}
for (const ch in this.holds) {
const h = this.holds[ch]
if (h.mark != null && (ch !== channel || p.seq > h.mark)) delete this.holds[ch]
}
return true
}
reset(channel) {
this.resets[channel] = 1
}
hold(channel) {
if (this.epoch) this.holds[channel] = { seq: this.seq }
}
subscribed(channel) {
const h = this.holds[channel]
if (h) h.mark = this.seq
}
fresh() {
this.holds = {}
this.resets = {}
}
}
const ADVANCE = { unsupported: 1, silent: 1, refused: 1 }
class Memory {
constructor(key, ttl) {
this.key = key
this.ttl = ttl
this.mem = {}
}
get() {
try {
return JSON.parse(localStorage.getItem(this.key)) || {}
} catch (e) {
return this.mem
}
}
add(names, now) {
const m = this.get()
for (const n of names) m[n] = now + this.ttl
this.mem = m
try {
localStorage.setItem(this.key, JSON.stringify(m))
} catch (e) {}
}
}
class Fallback {
constructor(order, memory) {
this.order = order
this.memory = memory
this.reset()
}
reset() {
this.tried = []
this.failed = []
}
next(now) {
const skip = this.memory.get()
const left = this.order.filter((t) => this.tried.indexOf(t) < 0)
const name = left.find((t) => !(skip[t] > now)) ||
(this.tried.length ? undefined : this.order[this.order.length - 1])
if (name) this.tried.push(name)
else this.reset()
return name
}
fail(name, kind) {
if (ADVANCE[kind]) {
this.failed.push(name)
return true
}
this.reset()
return false
}
proved(now) {
if (this.failed.length) this.memory.add(this.failed, now)
this.reset()
}
}
function sseParser() {
let rest = ''
let ev = {}
return (chunk) => {
const lines = (rest + chunk).split(/\r\n|\r(?!$)|\n/)
rest = lines.pop()
const out = []
for (const line of lines) {
if (line === '') {
if (ev.data != null) out.push(ev)
ev = {}
continue
}
const colon = line.indexOf(':')
if (colon === 0) continue
const field = colon < 0 ? line : line.slice(0, colon)
let value = colon < 0 ? '' : line.slice(colon + 1)
if (value[0] === ' ') value = value.slice(1)
if (field === 'data') ev.data = ev.data == null ? value : ev.data + '\n' + value
else if (field === 'event' || field === 'id') ev[field] = value
}
return out
}
}
function lineSplitter() {
let rest = ''
return (chunk) => {
const lines = (rest + chunk).split('\n')
rest = lines.pop()
return lines.map((l) => l.replace(/\r$/, '')).filter(Boolean)
}
}
function parseEnvelope(text) {
try {
const env = JSON.parse(text)
return env && typeof env === 'object' && !Array.isArray(env) ? env : null
} catch (e) {
return null
}
}
function validChannel(name) {
return typeof name === 'string' && /^[\w.:@/-]{1,128}$/.test(name) &&
name.split('/').every((s) => s !== '' && s !== '.' && s !== '..')
}
function canShare() {
return typeof BroadcastChannel === 'function' && typeof navigator === 'object' && !!navigator.locks
}
function share(comet, name) {
const bc = new BroadcastChannel(name)
const tab = Math.random().toString(36).slice(2)
const tabs = (comet.tabs = {})
const abort = new AbortController()
let release
let answered
const post = (m) => bc.postMessage(m)
const announce = () => post({ t: 'subs', tab, ch: comet.channels() })
const leader = () => comet.role === 'leader'
bc.onmessage = ({ data: m }) => {
const t = m.t
if (t === 'subs' || t === 'bye') {
if (t === 'bye') delete tabs[m.tab]
else tabs[m.tab] = m.ch
if (answered) answered[m.tab] = 1
if (leader()) comet._sync()
} else if (t === 'who') {
announce()
if (leader()) {
post({ t: 'cur', id: comet.cursor.id })
post({ t: 'emit', ev: 'state', args: [comet.state, comet.transport] })
}
} else if (leader()) {
if (t === 'send') {
const answer = (r) => post(Object.assign({ t: 'rep', tab: m.tab, ref: m.ref }, r))
comet.send(m.data).then((v) => answer({ v }), (e) => answer({ e: { reason: e.message, status: e.status } }))
}
} else if (t === 'env') comet._envelope(m.env)
else if (t === 'cur') comet.cursor.set(m.id)
else if (t === 'emit') comet._emit.apply(comet, [m.ev].concat(m.args))
else if (t === 'rep' && m.tab === tab) comet._settle(m.ref, m.e, m.v)
else if (t === 'lead') comet._voidSends()
}
navigator.locks
.request(name, { signal: abort.signal }, () => {
comet.role = 'leader'
post({ t: 'lead' })
comet._voidSends()
answered = {}
post({ t: 'who' })
setTimeout(() => {
for (const id in tabs) if (!answered[id]) delete tabs[id]
answered = null
comet._sync()
}, 2000)
comet._sync()
return new Promise((r) => (release = r))
})
.catch(() => {})
const hide = () => post({ t: 'bye', tab })
addEventListener('pagehide', hide)
addEventListener('pageshow', announce)
announce()
post({ t: 'who' })
return {
tab,
post,
announce,
close() {
hide()
removeEventListener('pagehide', hide)
removeEventListener('pageshow', announce)
abort.abort()
if (release) release()
bc.close()
},
}
}
function streaming(sse) {
return (c) => {
const abort = new AbortController()
fetch(c.url(), {
signal: abort.signal,
cache: 'no-store',
headers: { Accept: sse ? 'text/event-stream' : 'application/x-ndjson' },
})
.then((res) => {
if (!res.ok || !res.body) return refused(c, res)
if (!sse) c.open()
const reader = res.body.getReader()
const decoder = new TextDecoder()
const feed = sse ? sseParser() : lineSplitter()
const pump = () => reader.read().then(({ done, value }) => {
if (done) return c.end()
if (sse) c.open()
c.data()
for (const item of feed(decoder.decode(value, { stream: true }))) c.text(sse ? item.data : item)
return pump()
})
return pump()
})
.catch((err) => c.fail('network', 0, err.message))
return { close: () => abort.abort() }
}
}
const sse = streaming(true)
const stream = streaming(false)
function refused(c, res) {
return res.json().catch(() => ({})).then((body) =>
c.fail(res.status === 501 || res.ok ? 'unsupported' : 'status', res.status, body.error || 'HTTP ' + res.status))
}
function longpoll(c) {
let abort
let closed = false
let first = true
const poll = () => {
abort = new AbortController()
fetch(c.url(first ? 0 : null), { signal: abort.signal, cache: 'no-store' })
.then((res) => {
if (!res.ok) return refused(c, res)
return res.json().then((body) => {
first = false
c.open()
c.data()
for (const env of body.messages) c.env(env)
c.cursor(body.last_id)
if (!closed) poll()
})
})
.catch((err) => c.fail('network', 0, err.message))
}
poll()
return {
close() {
closed = true
abort.abort()
},
}
}
function ws(c) {
const socket = new WebSocket(c.url())
let opened = false
let timer
socket.onopen = () => {
opened = true
c.open()
c.data()
timer = setInterval(() => {
if (socket.bufferedAmount) return c.end()
const id = c.ack()
if (id) send({ op: 'ack', last_id: id })
}, c.heartbeat)
}
socket.onmessage = (e) => {
c.data()
c.text(e.data)
}
socket.onclose = () => (opened ? c.end() : c.fail('refused', 0, 'WebSocket refused'))
const send = (frame) => socket.send(JSON.stringify(frame))
return {
send,
close() {
clearInterval(timer)
socket.onclose = null
socket.close()
},
}
}
const TRANSPORTS = { ws, sse, stream, longpoll }
class Comet {
constructor(prefix, options) {
const o = (this.options = Object.assign({
transports: ['ws', 'sse', 'stream', 'longpoll'],
minDelay: 500,
maxDelay: 30000,
firstByteTimeout: 5000,
heartbeat: 25000,
remember: 1800000,
}, options))
this.url = new URL(String(prefix).replace(/\/*$/, '/'), location.href).href
this.cursor = new Cursor(o.lastId)
this.fallback = new Fallback(o.transports.filter((t) => TRANSPORTS[t]), new Memory('comet ' + this.url, o.remember))
this.handlers = new Map()
this.listeners = {}
this.sends = {}
this.ref = 0
this.attempt = 0
this.state = 'idle'
this.role = 'solo'
this._wake = this._wake.bind(this)
addEventListener('online', this._wake)
addEventListener('pageshow', this._wake)
if (typeof document === 'object') document.addEventListener('visibilitychange', this._wake)
if (o.shared && canShare()) {
this.role = 'follower'
this.shared = share(this, 'comet ' + this.url)
}
}
subscribe(channel, handler) {
if (!validChannel(channel)) throw new TypeError('comet: invalid channel name: ' + channel)
this.handlers.set(channel, (this.handlers.get(channel) || []).concat(handler))
this._changed()
return () => this.unsubscribe(channel, handler)
}
unsubscribe(channel, handler) {
const left = (this.handlers.get(channel) || []).filter((h) => handler && h !== handler)
if (left.length) this.handlers.set(channel, left)
else this.handlers.delete(channel)
this._changed()
}
channels() {
return Array.from(this.handlers.keys())
}
on(event, fn) {
;(this.listeners[event] = this.listeners[event] || []).push(fn)
return () => this.off(event, fn)
}
off(event, fn) {
this.listeners[event] = (this.listeners[event] || []).filter((f) => f !== fn)
}
send(data) {
return new Promise((resolve, reject) => {
const ref = String(++this.ref)
this.sends[ref] = [resolve, reject]
const c = this.conn
if (this.role === 'follower') this.shared.post({ t: 'send', tab: this.shared.tab, ref, data })
else if (c && c.name === 'ws' && !this.closed) {
c.refs.push(ref)
if (c.open) c.t.send({ op: 'message', ref, data })
else c.queue.push({ op: 'message', ref, data })
} else this._settle(ref, { reason: 'comet: send needs a WebSocket connection' })
})
}
close() {
this.closed = true
this._stop()
clearTimeout(this.timer)
removeEventListener('online', this._wake)
removeEventListener('pageshow', this._wake)
if (typeof document === 'object') document.removeEventListener('visibilitychange', this._wake)
if (this.shared) this.shared.close()
this._voidSends()
this._setState('closed')
}
_changed() {
if (this.dirty) return
this.dirty = true
Promise.resolve().then(() => {
this.dirty = false
this._sync()
})
}
_sync() {
if (this.closed) return
if (this.shared) this.shared.announce()
if (this.role === 'follower') return
let want = this.channels()
for (const id in this.tabs) want = want.concat(this.tabs[id])
want = this.want = Array.from(new Set(want)).sort()
const c = this.conn
if (c && String(c.channels) === String(want)) return
if (c && c.name === 'ws' && c.open && want.length) {
for (const ch of want) {
if (c.channels.indexOf(ch) < 0) {
this.cursor.hold(ch)
c.t.send({ op: 'subscribe', channel: ch, last_id: this.cursor.id || '' })
}
}
for (const ch of c.channels) if (want.indexOf(ch) < 0) c.t.send({ op: 'unsubscribe', channel: ch })
c.channels = want
return
}
if (c || this.state !== 'waiting') {
this._stop()
this.fallback.reset()
this._connect()
}
}
_connect() {
clearTimeout(this.timer)
const want = this.want
if (this.closed || this.role === 'follower') return
if (!want || !want.length) return this._setState('idle')
const name = this.fallback.next(Date.now())
if (!name) return this._retry()
const c = (this.conn = { name, channels: want, refs: [], queue: [], seen: Date.now() })
this._setState('connecting')
const start = () => {
if (this.conn !== c) return
c.limit = name === 'ws' ? 0 : name === 'longpoll'
? (this.options.wait != null ? this.options.wait * 1000 : 30000) + 2 * this.options.heartbeat
: 2 * this.options.heartbeat
if (name !== 'longpoll') c.fbt = setTimeout(() => this._fail(c, 'silent', 0, name + ': nothing within firstByteTimeout'), this.options.firstByteTimeout)
this._watch(c)
c.t = TRANSPORTS[name](this._callbacks(c))
this.cursor.fresh()
}
if (this.cursor.id == null && name !== 'longpoll') {
fetch(this._url('longpoll', want, 0), { cache: 'no-store' })
.then((r) => r.json())
.then((b) => b.last_id && this._setCursor(b.last_id))
.catch(() => {})
.then(start)
} else start()
}
_callbacks(c) {
const live = () => this.conn === c
return {
heartbeat: this.options.heartbeat,
url: (wait) => this._url(c.name, c.channels, wait != null ? wait : c.name === 'longpoll' ? this.options.wait : null),
ack: () => this.cursor.id,
open: () => {
if (!live() || c.open) return
c.open = true
clearTimeout(c.fbt)
for (const frame of c.queue) c.t.send(frame)
this._setState('open')
},
data: () => {
if (!live()) return
this._watch(c)
if (c.proved) return
c.proved = Date.now()
this.fallback.proved(c.proved)
},
text: (s) => live() && this._envelope(parseEnvelope(s), c),
env: (e) => live() && this._envelope(e, c),
cursor: (id) => live() && this._setCursor(id),
end: () => live() && this._lost(c),
fail: (kind, status, reason) => live() && this._fail(c, kind, status, reason),
}
}
_url(name, channels, wait) {
const q = new URLSearchParams()
const token = typeof this.options.token === 'function' ? this.options.token() : this.options.token
if (name === 'sse' || name === 'stream') q.set('transport', name)
if (this.cursor.id) q.set('last_id', this.cursor.id)
if (token) q.set('token', token)
if (wait != null) q.set('wait', wait)
const url = this.url + 'sub/' + channels.join(',') + '?' + q
return name === 'ws' ? url.replace(/^http/, 'ws') : url
}
_watch(c) {
c.seen = Date.now()
clearTimeout(c.wd)
if (c.limit) c.wd = setTimeout(() => this._fail(c, c.proved ? 'lost' : 'silent', 0, c.name + ': watchdog'), c.limit)
}
_fail(c, kind, status, reason) {
if (this.conn !== c) return
this._emit('error', Object.assign(new Error(reason), { status, transport: c.name }))
if (!c.proved && this.fallback.fail(c.name, kind)) {
this._stop()
return this._connect()
}
this._lost(c)
}
_lost(c, now) {
if (this.conn !== c) return
this._stop()
if (c.proved && Date.now() - c.proved > this.options.heartbeat) this.attempt = 0
if (now) this._connect()
else this._retry()
}
_retry() {
this._setState('waiting')
this.timer = setTimeout(() => this._connect(), backoff(this.attempt++, this.options.minDelay, this.options.maxDelay))
}
_stop() {
const c = this.conn
if (!c) return
this.conn = null
clearTimeout(c.fbt)
clearTimeout(c.wd)
if (c.t) c.t.close()
for (const ref of c.refs) this._settle(ref, { reason: 'comet: connection closed before the reply' })
}
_wake(e) {
if (this.role === 'follower' || this.closed) return
const c = this.conn
if (e.type === 'visibilitychange') {
if (document.visibilityState !== 'visible') return
if (c ? !c.limit || Date.now() - c.seen < c.limit : this.state !== 'waiting') return
}
if (e.type === 'pageshow' && !e.persisted) return
this.attempt = 0
this._stop()
this.fallback.reset()
this._connect()
}
_setCursor(id) {
this.cursor.set(id)
if (this.role === 'leader') this.shared.post({ t: 'cur', id })
}
_envelope(env, c) {
if (!env) return
const event = env.event || ''
const ch = env.channel
const relay = () => this.role === 'leader' && this.shared.post({ t: 'env', env })
if (event.slice(0, 6) === 'comet.') {
const name = event.slice(6)
const d = env.data || {}
if (name === 'reconnect') {
if (c && c.name !== 'longpoll') this._lost(c, true)
} else if (env.ref) {
this._settle(env.ref, name === 'error' && d, d)
} else if (name === 'error') {
this._emit('error', Object.assign(new Error(d.reason), d))
} else if (name === 'subscribed') {
this.cursor.subscribed(ch)
} else if (name === 'reset') {
this.cursor.reset(ch)
relay()
this._emit('reset', ch, env)
} else if (name === 'deleted') {
this.handlers.delete(ch)
for (const id in this.tabs) this.tabs[id] = this.tabs[id].filter((x) => x !== ch)
if (c) c.channels = c.channels.filter((x) => x !== ch)
relay()
this._emit('deleted', ch, env)
this._changed()
}
return
}
if (env.id && !this.cursor.accept(ch, env.id)) return
relay()
for (const h of this.handlers.get(ch) || []) this._call(h, [env.data, env])
this._emit('message', env.data, env)
}
_settle(ref, err, value) {
const p = this.sends[ref]
if (!p) return
delete this.sends[ref]
if (err) p[1](Object.assign(new Error(err.reason || 'comet: send failed'), err))
else p[0](value)
}
_voidSends() {
for (const ref in this.sends) this._settle(ref, { reason: 'comet: connection closed before the reply' })
}
_setState(state) {
const name = this.conn ? this.conn.name : null
if (state !== this.state || name !== this.transport) this._emit('state', state, name)
}
_emit(event, ...args) {
if (event === 'state') {
this.state = args[0]
this.transport = args[1]
}
if (this.role === 'leader' && !this.closed && (event === 'state' || event === 'error')) {
this.shared.post({ t: 'emit', ev: event, args: event === 'error' ? [{ message: args[0].message, status: args[0].status }] : args })
}
for (const fn of this.listeners[event] || []) this._call(fn, args)
}
_call(fn, args) {
try {
fn.apply(null, args)
} catch (e) {
setTimeout(() => {
throw e
})
}
}
}
global.Comet = Comet
})(typeof self !== "undefined" ? self : this)
