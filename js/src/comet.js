import { backoff } from './backoff.js'
import { Cursor } from './cursor.js'
import { Fallback, Memory } from './fallback.js'
import { parseEnvelope, validChannel } from './parse.js'
import { canShare, share } from './shared.js'
import { sse, stream } from './transports/fetch.js'
import { longpoll } from './transports/longpoll.js'
import { ws } from './transports/ws.js'

const TRANSPORTS = { ws, sse, stream, longpoll }

// Comet is the client: one connection for all its subscriptions, a cursor it
// presents on every reconnect, and reconnects for as long as it is open.
export class Comet {
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
    // (No document in a worker.)
    if (typeof document === 'object') document.addEventListener('visibilitychange', this._wake)
    if (o.shared && canShare()) {
      this.role = 'follower'
      this.shared = share(this, 'comet ' + this.url)
    }
  }

  // subscribe calls handler(data, envelope) for each message of channel,
  // and returns the function that undoes it.
  subscribe(channel, handler) {
    if (!validChannel(channel)) throw new TypeError('comet: invalid channel name: ' + channel)
    this.handlers.set(channel, (this.handlers.get(channel) || []).concat(handler))
    this._changed()
    return () => this.unsubscribe(channel, handler)
  }

  // unsubscribe removes one handler, or every handler when none is given.
  unsubscribe(channel, handler) {
    const left = (this.handlers.get(channel) || []).filter((h) => handler && h !== handler)
    if (left.length) this.handlers.set(channel, left)
    else this.handlers.delete(channel)
    this._changed()
  }

  channels() {
    return Array.from(this.handlers.keys())
  }

  // on listens to 'state', 'message', 'reset', 'deleted' or 'error', and
  // returns the function that stops listening.
  on(event, fn) {
    ;(this.listeners[event] = this.listeners[event] || []).push(fn)
    return () => this.off(event, fn)
  }

  off(event, fn) {
    this.listeners[event] = (this.listeners[event] || []).filter((f) => f !== fn)
  }

  // send posts data to the server's backend over the WebSocket and resolves
  // with the backend's reply (comet.reply), or rejects with its comet.error.
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

  // _changed batches the subscribe and unsubscribe calls of one task into
  // one change of the connection.
  _changed() {
    if (this.dirty) return
    this.dirty = true
    Promise.resolve().then(() => {
      this.dirty = false
      this._sync()
    })
  }

  // _sync brings the connection to the channels wanted: this tab's, plus
  // every tab's when it leads a group. HTTP transports reconnect with the
  // cursor; a WebSocket subscribes and unsubscribes in place.
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
    // Without a cursor a stream starts "from now on", and a drop before
    // its first message would lose whatever came meanwhile. A long-poll
    // with wait=0 tells the hub's head, which makes "now" a cursor.
    if (this.cursor.id == null && name !== 'longpoll') {
      fetch(this._url('longpoll', want, 0), { cache: 'no-store' })
        .then((r) => r.json())
        .then((b) => b.last_id && this._setCursor(b.last_id))
        .catch(() => {})
        .then(start)
    } else start()
  }

  // _callbacks is what a transport may call; a connection that was
  // replaced is silenced here, so transports need not care.
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

  // _watch is the watchdog: a stream is expected to show life every
  // heartbeat, a long-poll to answer within its wait; twice that is dead.
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

  // _lost reconnects after a connection ended. A connection that lived
  // past a heartbeat was healthy: the backoff starts over. One that ends
  // quickly, over and over, backs off further each time.
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

  // _wake reconnects at once when the network is back, when the page is
  // shown again after a freeze (timers were stopped, sockets may be dead),
  // and when a hidden tab becomes visible while waiting or gone quiet.
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

  // _envelope handles one envelope: notices act on the connection (they
  // carry no id and never move the cursor); messages are deduplicated by id
  // and handed to the channel's handlers.
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

  // _setState tells listeners of every new state, and of each transport
  // tried while connecting.
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

  // _call runs application code: a handler that throws is reported, and
  // delivery to the others goes on.
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
