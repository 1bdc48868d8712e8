import test from 'node:test'
import assert from 'node:assert/strict'
import { backoff } from '../../src/backoff.js'

test('backoff cap doubles from min and stops at max', () => {
  const top = () => 0.999999
  const caps = [0, 1, 2, 3, 4, 5, 6, 7, 20, 1000].map((n) => backoff(n, 500, 30000, top))
  assert.deepEqual(caps, [499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999])
})

test('backoff is full jitter: anywhere from zero to the cap', () => {
  assert.equal(backoff(3, 500, 30000, () => 0), 0)
  assert.equal(backoff(3, 500, 30000, () => 0.5), 2000)
  for (let i = 0; i < 1000; i++) {
    const d = backoff(i % 12, 500, 30000)
    assert.ok(d >= 0 && d < 30000, `delay ${d} out of range`)
  }
})
