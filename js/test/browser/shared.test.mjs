// shared: true: one connection for all tabs, and a lossless handover when
// the leader tab closes.
import test from 'node:test'
import assert from 'node:assert/strict'
import { Caddy, browser, open, waitFor, quick, until } from './harness.mjs'

const caddy = new Caddy()
let context
let ws = false

test.before(async () => {
  await caddy.start()
  ws = await caddy.wsAvailable()
  context = await browser()
})
test.after(async () => {
  await context?.close()
  await caddy.stop()
})

const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i)

for (const transport of ['sse', 'ws']) {
  test(`${transport}: two tabs hold one connection, both get every message, and the leader hands over`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const room = `room.${transport}`
    const own = `own.${transport}`
    const opts = { ...quick, transports: [transport], shared: true }
    const a = await open(context, caddy.url)
    await a.evaluate(([o, ch]) => window.start(o, [ch]), [opts, room])
    await waitFor(a, () => window.comet.role === 'leader' && window.comet.state === 'open', null, 'tab A leading')
    const b = await open(context, caddy.url)
    await b.evaluate(([o, ch]) => window.start(o, [ch]), [opts, room])
    await waitFor(b, () => window.comet.state === 'open', null, 'tab B sees the connection open')
    assert.equal(await b.evaluate(() => window.comet.role), 'follower')

    for (const n of range(0, 5)) await caddy.publish(room, n)
    for (const p of [a, b]) await waitFor(p, () => window.received.length >= 5, null, 'five messages in each tab')
    assert.equal((await caddy.info(room)).subscribers, 1, 'one connection for both tabs')

    // A channel only the follower wants joins the leader's connection.
    await b.evaluate((ch) => window.listen(ch), own)
    await until(async () => (await caddy.info(own)).subscribers === 1, 5000, `the leader to subscribe ${own}`)
    await caddy.publish(own, 'mine')
    await waitFor(b, () => window.received.some((m) => m.data === 'mine'), null, "B's own message")

    if (transport === 'ws') {
      // A follower's send() goes through the leader's socket.
      assert.deepEqual(await b.evaluate(() => window.comet.send({ from: 'b' })), { echo: { from: 'b' } })
    }

    // The leader closes; messages keep coming while B takes over.
    await a.close()
    for (const n of range(5, 15)) await caddy.publish(room, n)
    await waitFor(b, () => window.comet.role === 'leader', null, 'tab B leading')
    await waitFor(b, () => window.received.filter((m) => m.channel !== 'own.' + window.comet.transport).length >= 15, null, 'every message in tab B', 20000)
    const got = await b.evaluate((room) => window.received.filter((m) => m.channel === room).map((m) => m.data), room)
    assert.deepEqual(got, range(0, 15), 'nothing lost, nothing twice')
    await until(async () => (await caddy.info(room)).subscribers === 1, 5000, 'B to hold the one connection')
    assert.deepEqual(await a.evaluate(() => 1).catch(() => 'closed'), 'closed')
    await b.close()
  })
}
