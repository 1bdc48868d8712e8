// Transport fallback through misbehaving proxies, and reconnecting through
// refusals that native EventSource would give up on.
import test from 'node:test'
import assert from 'node:assert/strict'
import { Caddy, Proxy, browser, open, waitFor, quick } from './harness.mjs'

const caddy = new Caddy()
let context

test.before(async () => {
  await caddy.start()
  context = await browser()
})
test.after(async () => {
  await context?.close()
  await caddy.stop()
})

const sseOnly = (res) => /event-stream/.test(res.headers['content-type'] || '')
const streams = (res) => /event-stream|ndjson/.test(res.headers['content-type'] || '')

test('a proxy that buffers SSE makes the client fall back, deliver, and remember', async () => {
  const proxy = await new Proxy(caddy.http, { hold: sseOnly }).start()
  try {
    const page = await open(context, proxy.url)
    await page.evaluate((o) => window.start(o, ['fb.sse']), { ...quick, transports: ['sse', 'stream', 'longpoll'] })
    await waitFor(page, () => window.comet.state === 'open' && window.comet.transport === 'stream', null, 'open over stream')
    await caddy.publish('fb.sse', 'through')
    await waitFor(page, () => window.received.length === 1, null, 'a message over the fallback')
    // The choice is remembered: the next page starts with the stream.
    const next = await open(context, proxy.url)
    await next.evaluate((o) => window.start(o, ['fb.sse']), { ...quick, transports: ['sse', 'stream', 'longpoll'] })
    await waitFor(next, () => window.comet.state === 'open', null, 'second page open')
    assert.deepEqual(await next.evaluate(() => window.states[0]), ['connecting', 'stream'])
    await page.close()
    await next.close()
  } finally {
    await proxy.stop()
  }
})

test('a proxy that buffers every stream and breaks WebSockets leaves long-poll, which delivers', async () => {
  const proxy = await new Proxy(caddy.http, { hold: streams, refuseUpgrade: true }).start()
  try {
    const page = await open(context, proxy.url)
    await page.evaluate((o) => window.start(o, ['fb.all']), quick)
    await waitFor(page, () => window.comet.state === 'open' && window.comet.transport === 'longpoll', null, 'open over longpoll', 20000)
    await caddy.publish('fb.all', 'polled')
    await waitFor(page, () => window.received.length === 1, null, 'a message over long-poll')
    const tried = await page.evaluate(() => window.states.filter((s) => s[0] === 'connecting').map((s) => s[1]))
    assert.deepEqual(tried.slice(0, 4), ['ws', 'sse', 'stream', 'longpoll'])
    await page.close()
  } finally {
    await proxy.stop()
  }
})

test('non-200 answers are retried until the server is back (no EventSource give-up)', async () => {
  let refusals = 4
  const proxy = await new Proxy(caddy.http).start()
  const forward = proxy.forward.bind(proxy)
  proxy.forward = (req, res) => {
    if (req.url.startsWith('/comet/sub/') && refusals > 0) {
      refusals--
      res.writeHead(503, { 'Content-Type': 'application/json' })
      return res.end('{"error":"upstream down"}')
    }
    forward(req, res)
  }
  try {
    const page = await open(context, proxy.url)
    await page.evaluate((o) => window.start(o, ['fb.503']), { ...quick, transports: ['sse'], lastId: 'earliest' })
    await caddy.publish('fb.503', 'after the outage')
    await waitFor(page, () => window.received.length === 1, null, 'the message after four 503s')
    const errors = await page.evaluate(() => window.events.filter((e) => e[0] === 'error'))
    assert.equal(errors.length, 4)
    assert.deepEqual(errors[0], ['error', 'upstream down', 503])
  } finally {
    await proxy.stop()
  }
})

test('coming back online reconnects at once, without waiting out the backoff', async () => {
  let refuse = true
  const proxy = await new Proxy(caddy.http).start()
  const forward = proxy.forward.bind(proxy)
  proxy.forward = (req, res) => {
    if (refuse && req.url.startsWith('/comet/sub/')) {
      res.writeHead(502)
      return res.end()
    }
    forward(req, res)
  }
  try {
    const page = await open(context, proxy.url)
    // A backoff far longer than the test's timeout.
    await page.evaluate((o) => window.start(o, ['fb.online']), { ...quick, transports: ['sse'], minDelay: 600000, maxDelay: 600000 })
    await waitFor(page, () => window.comet.state === 'waiting', null, 'backing off')
    refuse = false
    await page.evaluate(() => window.dispatchEvent(new Event('online')))
    await waitFor(page, () => window.comet.state === 'open', null, 'open right after online', 5000)
  } finally {
    await proxy.stop()
  }
})
