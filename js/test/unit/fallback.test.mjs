import test from 'node:test'
import assert from 'node:assert/strict'
import { Fallback, Memory } from '../../src/fallback.js'

const order = ['ws', 'sse', 'stream', 'longpoll']
const T = 1_000_000

function fresh() {
  return new Fallback(order, new Memory('test', 60_000)) // no localStorage in node: kept in memory
}

test('tries transports in order', () => {
  assert.equal(fresh().next(T), 'ws')
})

test('a transport failure moves on at once; success remembers the failures', () => {
  const f = fresh()
  assert.equal(f.next(T), 'ws')
  assert.equal(f.fail('ws', 'refused'), true)
  assert.equal(f.next(T), 'sse')
  assert.equal(f.fail('sse', 'silent'), true)
  assert.equal(f.next(T), 'stream')
  f.proved(T)
  assert.deepEqual(f.memory.get(), { ws: T + 60_000, sse: T + 60_000 })
  assert.equal(f.next(T + 1), 'stream', 'the next round starts at the first transport not remembered')
  f.reset()
  assert.equal(f.next(T + 60_001), 'ws', 'remembered only for a while')
})

test('a failure that is not the transport ends the round and remembers nothing', () => {
  const f = fresh()
  f.next(T)
  assert.equal(f.fail('ws', 'refused'), true)
  f.next(T)
  assert.equal(f.fail('sse', 'network'), false, 'network down: back off')
  assert.equal(f.next(T), 'ws', 'a new round starts from the top')
  assert.deepEqual(f.memory.get(), {})
})

test('when every transport fails the round ends without blame', () => {
  const f = fresh()
  for (const t of order) {
    assert.equal(f.next(T), t)
    assert.equal(f.fail(t, 'unsupported'), true)
  }
  assert.equal(f.next(T), undefined, 'round over: back off')
  assert.deepEqual(f.memory.get(), {})
  assert.equal(f.next(T), 'ws')
})

test('HTTP errors other than 501 are not the transport', () => {
  const f = fresh()
  f.next(T)
  assert.equal(f.fail('ws', 'status'), false)
})

test('with everything remembered, the last transport is still tried', () => {
  const f = fresh()
  f.memory.add(order, T)
  assert.equal(f.next(T), 'longpoll')
})

test('Memory survives a broken localStorage', () => {
  globalThis.localStorage = {
    getItem() {
      throw new Error('SecurityError')
    },
    setItem() {
      throw new Error('QuotaExceededError')
    },
  }
  try {
    const m = new Memory('k', 10)
    m.add(['sse'], 5)
    assert.deepEqual(m.get(), { sse: 15 })
  } finally {
    delete globalThis.localStorage
  }
})

test('Memory is shared through localStorage', () => {
  const store = {}
  globalThis.localStorage = { getItem: (k) => store[k] ?? null, setItem: (k, v) => (store[k] = v) }
  try {
    new Memory('k', 10).add(['ws'], 1)
    assert.deepEqual(new Memory('k', 10).get(), { ws: 11 })
  } finally {
    delete globalThis.localStorage
  }
})
