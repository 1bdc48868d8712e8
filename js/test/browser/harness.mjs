// Shared by the browser tests: a real Caddy with the comet module, a proxy
// that can buffer or cut connections, and headless Chromium (Debian's
// package, never a downloaded browser).
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const jsDir = fileURLToPath(new URL('../..', import.meta.url))
export const repo = join(jsDir, '..')
const tmp = mkdtempSync(join(tmpdir(), 'cometbox-js-'))
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }))

// request is a plain HTTP request on a connection of its own. Caddy's admin
// endpoint needs it: it refuses fetch, whose Sec-Fetch-Mode header marks a
// browser-like client.
function request(port, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

let publishes = 0

// retried runs a request again, up to three times, when its connection was
// dropped before an answer.
async function retried(fn) {
  for (let i = 1; ; i++) {
    try {
      return await fn()
    } catch (e) {
      if (i >= 3 || !/ECONNRESET|socket hang up/.test(e.message + e.code)) throw e
    }
  }
}

let binary
// caddyBinary builds Caddy with the module from this checkout, so that it
// embeds the js/dist/comet.js under test, unless COMET_CADDY names one.
function caddyBinary() {
  if (process.env.COMET_CADDY) return process.env.COMET_CADDY
  if (!binary) {
    binary = join(tmp, 'caddy')
    execFileSync('go', ['build', '-o', binary, './cmd/caddy'], { cwd: repo, stdio: 'inherit' })
  }
  return binary
}

// freePort resolves to a loopback port that nothing listens on and that no
// earlier call in this process returned: the kernel may hand a closed port
// out again at once, and a Caddy given one port for both its admin endpoint
// and its site would answer from the wrong one.
const portsGiven = new Set()
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer()
      s.once('error', reject)
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address()
        s.close(() => resolve(port))
      })
    })
    if (!portsGiven.has(port)) {
      portsGiven.add(port)
      return port
    }
  }
}

// until polls fn (a promise of a truthy value) every 50 ms up to ms.
export async function until(fn, ms, what) {
  const deadline = Date.now() + ms
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ': ' + last.message : ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

// Caddy runs testdata/js.Caddyfile (or `config`, with `env` added to its
// environment) on free ports; restart keeps the ports, so pages reconnect to
// the same address.
export class Caddy {
  constructor({ config = 'testdata/js.Caddyfile', env = {} } = {}) {
    this.config = join(repo, config)
    this.env = env
  }

  async start() {
    this.http = this.http || (await freePort())
    this.admin = this.admin || (await freePort())
    this.url = `http://127.0.0.1:${this.http}`
    this.log = ''
    this.proc = spawn(caddyBinary(), ['run', '--config', this.config, '--adapter', 'caddyfile'], {
      env: { ...process.env, HTTP_PORT: String(this.http), ADMIN_PORT: String(this.admin), PAGES: jsDir, ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.proc.stderr.on('data', (b) => (this.log = (this.log + b).slice(-20000)))
    const exited = new Promise((resolve) => this.proc.once('exit', resolve))
    this.exited = exited
    await until(async () => {
      if (this.proc.exitCode != null) throw new Error('caddy exited:\n' + this.log)
      const admin = await request(this.admin, '/config/')
      // The comet handler answers 404 in JSON for a channel it has never seen.
      const site = await fetch(`${this.url}/comet/pub/not-yet`)
      return admin.status === 200 && site.status === 404
    }, 20000, 'caddy to start')
    return this
  }

  async stop() {
    if (!this.proc || this.proc.exitCode != null) return
    this.proc.kill('SIGTERM')
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 8000)
    await this.exited
    clearTimeout(t)
  }

  async restart() {
    await this.stop()
    await this.start()
  }

  // reload loads the same config again: the hub survives (UsagePool), held
  // connections end with comet.reconnect or close 1001 (SPEC §8).
  async reload() {
    const res = await retried(() => request(this.admin, '/load', {
      method: 'POST',
      headers: { 'Content-Type': 'text/caddyfile', 'Cache-Control': 'must-revalidate' },
      body: readFileSync(this.config),
    }))
    if (res.status !== 200) throw new Error(`reload: ${res.status} ${res.text}`)
  }

  // publish uses a new connection each time, since a reload closes the
  // idle connections of the old config; one accepted just then can still be
  // dropped, so it retries, with an Idempotency-Key that makes a retry of a
  // publish that did land a no-op (SPEC §5).
  async publish(channel, data, event) {
    const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': `test-${++publishes}` }
    if (event) headers['Comet-Event'] = event
    const res = await retried(() => request(this.http, `/comet/pub/${channel}`, { method: 'POST', headers, body: JSON.stringify(data) }))
    if (res.status !== 201 && res.status !== 202) throw new Error(`publish: ${res.status} ${res.text}`)
    return JSON.parse(res.text)
  }

  async info(channel) {
    const res = await request(this.http, `/comet/pub/${channel}`)
    return res.status === 404 ? { subscribers: 0 } : JSON.parse(res.text)
  }

  async delete(channel) {
    return request(this.http, `/comet/pub/${channel}`, { method: 'DELETE' })
  }

  // subscribers reads caddy_comet_subscribers by transport from the metrics.
  async subscribers() {
    const { text } = await request(this.admin, '/metrics')
    const out = {}
    for (const [, t, n] of text.matchAll(/^caddy_comet_subscribers\{[^}]*transport="(\w+)"[^}]*\} (\S+)$/gm)) out[t] = +n
    return out
  }

  // wsAvailable tells whether this server answers a WebSocket upgrade on
  // channel (one a token-less client may subscribe to).
  async wsAvailable(channel = 'probe') {
    return new Promise((resolve) => {
      const req = http.get(`${this.url}/comet/sub/${channel}`, {
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      })
      req.on('upgrade', (res, socket) => {
        socket.destroy()
        resolve(true)
      })
      req.on('response', (res) => {
        res.resume()
        resolve(false)
      })
      req.on('error', () => resolve(false))
    })
  }
}

// Proxy stands between the browser and Caddy. `hold(res)` picks responses
// it buffers until they end, as buffering proxies and antivirus filters do;
// `refuseUpgrade` breaks WebSockets; cut() drops every connection at once.
export class Proxy {
  constructor(target, { hold = () => false, refuseUpgrade = false } = {}) {
    this.target = target
    this.hold = hold
    this.refuseUpgrade = refuseUpgrade
    this.sockets = new Set()
    this.server = http.createServer((req, res) => this.forward(req, res))
    this.server.on('connection', (s) => this.track(s))
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head))
  }

  async start() {
    this.port = await freePort()
    await new Promise((r) => this.server.listen(this.port, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${this.port}`
    return this
  }

  track(s) {
    this.sockets.add(s)
    s.on('close', () => this.sockets.delete(s))
  }

  forward(req, res) {
    const up = http.request(
      { host: '127.0.0.1', port: this.target, path: req.url, method: req.method, headers: req.headers, agent: false },
      (ur) => {
        const headers = { ...ur.headers }
        delete headers['transfer-encoding']
        delete headers.connection
        if (this.hold(ur)) {
          const chunks = []
          ur.on('data', (c) => chunks.push(c))
          ur.on('end', () => {
            res.writeHead(ur.statusCode, headers)
            res.end(Buffer.concat(chunks))
          })
          return
        }
        res.writeHead(ur.statusCode, headers)
        res.flushHeaders()
        ur.pipe(res)
      },
    )
    up.on('socket', (s) => this.track(s))
    up.on('error', () => res.destroy())
    res.on('close', () => up.destroy())
    req.pipe(up)
  }

  upgrade(req, socket, head) {
    this.track(socket)
    if (this.refuseUpgrade) return socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n')
    const up = net.connect(this.target, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
      up.write(raw + '\r\n')
      up.write(head)
      up.pipe(socket)
      socket.pipe(up)
    })
    this.track(up)
    up.on('error', () => socket.destroy())
    socket.on('error', () => up.destroy())
  }

  // cut drops every connection, client and upstream side, mid-stream.
  cut() {
    for (const s of this.sockets) s.destroy()
  }

  async stop() {
    this.cut()
    await new Promise((r) => this.server.close(r))
  }
}

const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync']

// browser starts Chromium with a fresh profile: one context, so pages
// share storage, BroadcastChannel and Web Locks like tabs of one window.
export async function browser() {
  const dir = mkdtempSync(join(tmp, 'profile-'))
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
  })
  return context
}

// launch starts Chromium for tests that need several isolated contexts
// (browser.newContext()), such as two users each with their own cookies.
export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args })
}

// open loads a test page and waits for its helpers.
export async function open(context, base, page = 'client.html') {
  const p = await context.newPage()
  p.on('pageerror', (e) => {
    if (!/expected by the test/.test(e.message)) console.error('page error:', e.message)
  })
  await p.goto(`${base}/test/pages/${page}`)
  await p.waitForFunction(() => window.ready === true, null, { timeout: 10000 })
  return p
}

// waitFor waits for fn(arg) to be truthy in the page; on timeout it says
// what it waited for and what the page had seen.
export async function waitFor(page, fn, arg, what, timeout = 15000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 50 })
  } catch (e) {
    const seen = await page.evaluate(() => ({
      state: window.comet && [window.comet.state, window.comet.transport, window.comet.role],
      received: window.received.map((m) => m.data),
      events: window.events.slice(-10),
      states: window.states.slice(-10),
    })).catch((err) => err.message)
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; page saw ${JSON.stringify(seen)}`)
  }
}

// Options that make the client quick enough for tests against a server
// with `heartbeat 1s`.
export const quick = { heartbeat: 1000, firstByteTimeout: 1500, minDelay: 100, maxDelay: 1000 }
