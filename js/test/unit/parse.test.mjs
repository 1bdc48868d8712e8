import test from 'node:test'
import assert from 'node:assert/strict'
import { sseParser, lineSplitter, parseEnvelope, validChannel } from '../../src/parse.js'

// What the server writes (caddymodule/transport/stream.go, message.go).
const preamble = 'retry: 2000\n: ok\n\n'
const msg = 'id: k3f9-1\nevent: say\ndata: {"id":"k3f9-1","channel":"chat","event":"say","data":{"t":"hi"},"time":1}\n\n'
const notice = 'event: comet.reset\ndata: {"channel":"chat","event":"comet.reset","time":2}\n\n'

test('SSE parser reads the server stream: comments and retry skipped', () => {
  const feed = sseParser()
  const events = feed(preamble + msg + ': heartbeat\n\n' + notice)
  assert.deepEqual(events.map((e) => [e.id, e.event]), [['k3f9-1', 'say'], [undefined, 'comet.reset']])
  assert.equal(JSON.parse(events[0].data).data.t, 'hi')
})

test('SSE parser copes with any split of the stream', () => {
  const text = preamble + msg + notice + msg
  const whole = sseParser()(text)
  for (let size = 1; size < 40; size++) {
    const feed = sseParser()
    const got = []
    for (let i = 0; i < text.length; i += size) got.push(...feed(text.slice(i, i + size)))
    assert.deepEqual(got, whole, `chunk size ${size}`)
  }
})

test('SSE parser: CRLF and CR line ends, multi-line data, no space after colon', () => {
  const feed = sseParser()
  // A CR at the end of a chunk may be half a CRLF: it waits for the next.
  assert.deepEqual(feed('data:a\r\ndata: b\r\r'), [])
  assert.deepEqual(feed('data: c\r'), [{ data: 'a\nb' }])
  assert.deepEqual(feed('\n\r\n'), [{ data: 'c' }], 'CR then LF is one line end, not two')
})

test('SSE parser: an event without data is not dispatched', () => {
  assert.deepEqual(sseParser()('event: x\n\nid: 1\n\n'), [])
})

test('NDJSON splitter returns complete lines and drops heartbeats', () => {
  const feed = lineSplitter()
  assert.deepEqual(feed('{"a":1}\n\n{"b"'), ['{"a":1}'])
  assert.deepEqual(feed(':2}\r\n'), ['{"b":2}'])
  assert.deepEqual(feed('\n'), [])
})

test('parseEnvelope accepts objects only', () => {
  assert.deepEqual(parseEnvelope('{"id":"e-1","channel":"c"}'), { id: 'e-1', channel: 'c' })
  for (const bad of ['', 'nope', '[1]', 'null', '3', '{"a":']) assert.equal(parseEnvelope(bad), null, bad)
})

test('validChannel follows the server rules', () => {
  for (const ok of ['chat', 'user.42', 'a/b', 'x:y@z-_', 'a'.repeat(128)]) assert.ok(validChannel(ok), ok)
  for (const bad of ['', 'a,b', 'a b', '/a', 'a/', 'a//b', 'a/./b', '../a', 'a'.repeat(129), 'é', null]) {
    assert.ok(!validChannel(bad), String(bad))
  }
})
