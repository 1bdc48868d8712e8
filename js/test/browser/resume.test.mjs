// Connections that die mid-stream lose nothing: the client reconnects with
// its cursor and the server resends what came after it.
import test from 'node:test'
import assert from 'node:assert/strict'
import { Caddy, Proxy, browser, open, waitFor, quick } from './harness.mjs'

const caddy = new Caddy()
let proxy
let context
let ws = false

test.before(async () => {
  await caddy.start()
  ws = await caddy.wsAvailable()
  proxy = await new Proxy(caddy.http).start()
  context = await browser()
})
test.after(async () => {
  await context?.close()
  await proxy?.stop()
  await caddy.stop()
})

const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i)

// reopened is true in the page once the client has opened more than n
// connections.
const reopened = (n) => window.states.filter((s) => s[0] === 'open').length > n

// Publishes `count` messages and calls `disrupt` after every `every`; the
// messages after a disruption are published while the client is being cut
// off and reconnecting. When `reconnects` is true it waits, before the next
// disruption, for the client to have opened a new connection, so that each
// one hits a live connection. Then it checks the page got everything.
async function publishThrough(page, ch, count, every, disrupt, reconnects) {
  let disrupted = 0
  for (const n of range(0, count)) {
    await caddy.publish(ch, n)
    if (n % every !== every - 1 || n === count - 1) continue
    if (reconnects && disrupted) await waitFor(page, reopened, disrupted, `reconnect #${disrupted}`)
    await disrupt()
    disrupted++
  }
  await waitFor(page, (n) => window.received.length >= n, count, `${count} messages`, 30000)
  const got = await page.evaluate(() => window.received.map((m) => m.data))
  assert.deepEqual(got, range(0, count), 'every message once, in order')
  if (reconnects) {
    await waitFor(page, reopened, disrupted, `${disrupted} reconnects`)
  }
}

for (const transport of ['sse', 'stream', 'longpoll', 'ws']) {
  test(`${transport}: sockets cut mid-stream lose nothing`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const page = await open(context, proxy.url)
    const ch = `cut.${transport}`
    await page.evaluate(([o, ch]) => window.start(o, [ch]), [{ ...quick, transports: [transport] }, ch])
    await waitFor(page, () => window.comet.state === 'open', null, 'open')
    // (Chromium itself resends a poll whose idle keep-alive socket was cut,
    // so a long-poll client may never see the cut.)
    await publishThrough(page, ch, 40, 8, () => proxy.cut(), transport !== 'longpoll')
    await page.close()
  })

  test(`${transport}: a Caddy reload mid-stream loses nothing`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const page = await open(context, caddy.url)
    const ch = `reload.${transport}`
    await page.evaluate(([o, ch]) => window.start(o, [ch]), [{ ...quick, transports: [transport] }, ch])
    await waitFor(page, () => window.comet.state === 'open', null, 'open')
    // (A held long-poll is answered with comet.reconnect and simply polls
    // again: no state change to wait for.)
    await publishThrough(page, ch, 30, 10, () => caddy.reload(), transport !== 'longpoll')
    await page.close()
  })
}

test('a client started without lastId loses nothing when it drops before its first message', async () => {
  // Without a cursor a stream means "from now on"; the client asks the hub
  // for its head first, so a reconnect has a cursor to resume from.
  let refuse = false
  const gate = await new Proxy(caddy.http).start()
  const forward = gate.forward.bind(gate)
  gate.forward = (req, res) => {
    if (refuse && req.url.startsWith('/comet/sub/')) {
      res.writeHead(503)
      return res.end()
    }
    forward(req, res)
  }
  try {
    const page = await open(context, gate.url)
    await page.evaluate((o) => window.start(o, ['nocursor']), { ...quick, transports: ['sse'] })
    await waitFor(page, () => window.comet.state === 'open', null, 'open')
    refuse = true
    gate.cut()
    await waitFor(page, () => window.events.some((e) => e[2] === 503), null, 'a refused reconnect')
    await caddy.publish('nocursor', 'while away')
    refuse = false
    await waitFor(page, () => window.received.length === 1, null, 'the message published while away')
  } finally {
    await gate.stop()
  }
})

test('a restarted server (history lost) is reconnected to for as long as it takes, with a reset', async () => {
  const page = await open(context, proxy.url)
  await page.evaluate((o) => window.start(o, ['restart']), { ...quick, transports: ['sse'] })
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  await caddy.publish('restart', 'before')
  await waitFor(page, () => window.received.length === 1, null, 'the first message')
  await caddy.stop()
  await waitFor(page, () => window.events.filter((e) => e[0] === 'error').length >= 3, null, 'several failed reconnects')
  await caddy.start()
  // The memory store starts a new epoch: the old cursor cannot be proven
  // complete, so the server resets the channel.
  await waitFor(page, () => window.events.some((e) => e[0] === 'reset' && e[1] === 'restart'), null, 'reset event')
  await caddy.publish('restart', 'after')
  await waitFor(page, () => window.received.length === 2, null, 'a message after the restart')
  assert.deepEqual(await page.evaluate(() => window.received.map((m) => m.data)), ['before', 'after'])
  await page.close()
})
