// Each transport, forced in turn, against a real Caddy: history, then live
// messages, on one multiplexed connection.
import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
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

for (const transport of ['sse', 'stream', 'longpoll', 'ws']) {
  test(`${transport}: history from earliest, then live messages, in order and once`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const ch = `history.${transport}`
    for (let i = 0; i < 3; i++) await caddy.publish(ch, { n: i })
    const page = await open(context, caddy.url)
    await page.evaluate(([o, ch]) => window.start(o, [ch]), [{ ...quick, transports: [transport], lastId: 'earliest' }, ch])
    await waitFor(page, () => window.received.length >= 3, null, 'history')
    assert.equal(await page.evaluate(() => window.comet.transport), transport)
    for (let i = 3; i < 6; i++) await caddy.publish(ch, { n: i })
    await waitFor(page, () => window.received.length >= 6, null, 'live messages')
    const got = await page.evaluate(() => window.received)
    assert.deepEqual(got.map((m) => m.data.n), [0, 1, 2, 3, 4, 5])
    assert.equal(new Set(got.map((m) => m.id)).size, 6)
    await page.close()
  })

  test(`${transport}: channels share one connection; a channel added later gets what came after the cursor`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `mux.${transport}.${x}`)
    const page = await open(context, caddy.url)
    await page.evaluate(([o, chs]) => window.start(o, chs), [{ ...quick, transports: [transport] }, [a, b]])
    await waitFor(page, () => window.comet.state === 'open', null, 'open')
    await caddy.publish(a, 'a1')
    await caddy.publish(b, 'b1')
    await waitFor(page, () => window.received.length >= 2, null, 'a1 and b1')
    if (transport !== 'longpoll') {
      // Long-poll subscribers are counted only while a poll is held.
      await until(async () => (await caddy.subscribers())[transport] === 1, 5000, `one ${transport} subscriber`)
    }
    await page.evaluate((c) => window.listen(c), c)
    await caddy.publish(c, 'c1')
    await caddy.publish(a, 'a2')
    await waitFor(page, () => window.received.length >= 4, null, 'c1 and a2')
    const got = await page.evaluate(() => window.received.map((m) => m.data))
    assert.deepEqual(got.slice(0, 2), ['a1', 'b1'])
    assert.deepEqual(got.slice(2).sort(), ['a2', 'c1'])
    // (The metric counts hub subscriptions, and a WebSocket holds one per
    // runtime subscribe; so check per channel from here.)
    if (transport !== 'longpoll') {
      for (const ch of [a, b, c]) {
        await until(async () => (await caddy.info(ch)).subscribers === 1, 5000, `one subscriber on ${ch}`)
      }
    }
    await page.close()
  })
}

test('ws: send() resolves with the backend reply', async (t) => {
  if (!ws) return t.skip('server does not answer the WebSocket upgrade')
  const page = await open(context, caddy.url)
  await page.evaluate((o) => window.start(o, ['send.test']), { ...quick, transports: ['ws'] })
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  const reply = await page.evaluate(() => window.comet.send({ hello: 'backend' }))
  assert.deepEqual(reply, { echo: { hello: 'backend' } })
  await page.close()
})

test('send() rejects without a WebSocket', async () => {
  const page = await open(context, caddy.url)
  await page.evaluate((o) => window.start(o, ['send.none']), { ...quick, transports: ['sse'] })
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  const err = await page.evaluate(() => window.comet.send(1).then(() => 'resolved', (e) => e.message))
  assert.match(err, /WebSocket/)
  await page.close()
})

test('default order picks the first transport the server offers, and events arrive by name', async () => {
  const page = await open(context, caddy.url)
  await page.evaluate((o) => window.start(o, ['default.order']), quick)
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  assert.equal(await page.evaluate(() => window.comet.transport), ws ? 'ws' : 'sse')
  await caddy.publish('default.order', { t: 'hi' }, 'say')
  await waitFor(page, () => window.received.length >= 1, null, 'a named event')
  assert.deepEqual(await page.evaluate(() => window.received[0].data), { t: 'hi' })
  await page.close()
})

test('the server serves the classic build at /comet/client.js', async (t) => {
  const served = await (await fetch(`${caddy.url}/comet/client.js`)).text()
  const built = readFileSync(new URL('../../dist/comet.js', import.meta.url), 'utf8')
  if (served !== built && process.env.COMET_CADDY) return t.skip('COMET_CADDY was built from another dist/comet.js')
  assert.ok(served === built, '/comet/client.js differs from js/dist/comet.js')
})

for (const transport of ['sse', 'ws']) {
  test(`${transport}: unsubscribing every channel closes the connection`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const page = await open(context, caddy.url)
    await page.evaluate((o) => window.start(o, ['idle.a', 'idle.b']), { ...quick, transports: [transport] })
    await waitFor(page, () => window.comet.state === 'open', null, 'open')
    await page.evaluate(() => window.comet.unsubscribe('idle.a'))
    await until(async () => (await caddy.info('idle.a')).subscribers === 0, 5000, 'idle.a to lose its subscriber')
    assert.equal((await caddy.info('idle.b')).subscribers, 1)
    await page.evaluate(() => window.comet.unsubscribe('idle.b'))
    await waitFor(page, () => window.comet.state === 'idle', null, 'idle')
    await until(async () => (await caddy.info('idle.b')).subscribers === 0, 5000, 'the connection to end')
    await page.close()
  })
}

test('a handler that throws does not stop delivery', async () => {
  const page = await open(context, caddy.url)
  await page.evaluate((o) => {
    window.start(o, [])
    window.comet.subscribe('throws', () => {
      throw new Error('handler bug (expected by the test)')
    })
    window.listen('throws')
  }, { ...quick, transports: ['sse'] })
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  await caddy.publish('throws', 1)
  await caddy.publish('throws', 2)
  await waitFor(page, () => window.received.length === 2, null, 'both messages to the second handler')
  await page.close()
})

test('ESM build works from an import', async () => {
  const page = await open(context, caddy.url, 'esm.html')
  await page.evaluate((o) => window.start(o, ['esm.test']), { ...quick, transports: ['sse'] })
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  await caddy.publish('esm.test', 'x')
  await waitFor(page, () => window.received.length === 1, null, 'one message')
  await page.close()
})

test('deleting a channel emits deleted and drops its handlers; the others go on', async () => {
  const page = await open(context, caddy.url)
  await page.evaluate((o) => window.start(o, ['del.gone', 'del.kept']), { ...quick, transports: ['sse'] })
  await waitFor(page, () => window.comet.state === 'open', null, 'open')
  await caddy.publish('del.gone', 1)
  await waitFor(page, () => window.received.length === 1, null, 'first message')
  const res = await caddy.delete('del.gone')
  assert.equal(res.status, 200)
  await waitFor(page, () => window.events.some((e) => e[0] === 'deleted'), null, 'deleted event')
  assert.deepEqual(await page.evaluate(() => window.comet.channels()), ['del.kept'])
  await caddy.publish('del.kept', 2)
  await waitFor(page, () => window.received.length === 2, null, 'message on the kept channel')
  await page.close()
})
