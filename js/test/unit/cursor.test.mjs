import test from 'node:test'
import assert from 'node:assert/strict'
import { Cursor, parseId } from '../../src/cursor.js'

test('parseId splits epoch and seq', () => {
  assert.deepEqual(parseId('k3f9x0aa-1842'), { epoch: 'k3f9x0aa', seq: 1842 })
  for (const bad of ['earliest', '', null, undefined, 'k3f9', 'k3f9-', '-1', 'k-1x']) assert.equal(parseId(bad), null, String(bad))
})

test('cursor starts where told: nothing, earliest, or an id', () => {
  assert.equal(new Cursor().id, null)
  assert.equal(new Cursor('earliest').id, 'earliest')
  assert.equal(new Cursor('e-5').id, 'e-5')
})

test('one cursor moves across every channel, by seq', () => {
  const c = new Cursor('e-5')
  assert.ok(c.accept('a', 'e-6'))
  assert.ok(c.accept('b', 'e-7'))
  assert.ok(c.accept('a', 'e-9'))
  assert.equal(c.id, 'e-9')
})

test('duplicates are dropped, whatever the transport replays', () => {
  const c = new Cursor('earliest')
  assert.ok(c.accept('a', 'e-1'))
  assert.ok(c.accept('a', 'e-2'))
  assert.ok(!c.accept('a', 'e-2'))
  assert.ok(!c.accept('a', 'e-1'))
  assert.ok(!new Cursor('e-5').accept('a', 'e-5'))
  assert.equal(c.id, 'e-2')
})

test('seq compares as a number, not as text', () => {
  const c = new Cursor('e-9')
  assert.ok(c.accept('a', 'e-10'))
  assert.ok(!c.accept('a', 'e-9'))
  assert.equal(c.id, 'e-10')
})

test('a new epoch is a new history: all of it is new', () => {
  const c = new Cursor('old-500')
  assert.ok(c.accept('a', 'new-1'))
  assert.ok(c.accept('b', 'new-2'))
  assert.equal(c.id, 'new-2')
  assert.ok(!c.accept('a', 'new-1'))
})

test('long-poll last_id moves the cursor without a message', () => {
  const c = new Cursor()
  c.set('e-40')
  assert.equal(c.id, 'e-40')
  assert.ok(!c.accept('a', 'e-40'))
  assert.ok(c.accept('a', 'e-41'))
})

test('after comet.reset the replay is taken even behind the cursor', () => {
  // A cursor the server cannot vouch for (ahead of its history): it resets
  // the channel and replays what it has; the cursor follows it back.
  const c = new Cursor('e-50')
  c.reset('a')
  assert.ok(c.accept('a', 'e-3'))
  assert.ok(c.accept('a', 'e-4'))
  assert.equal(c.id, 'e-4')
  c.fresh()
  assert.ok(!c.accept('a', 'e-4'), 'a new connection dedupes again')
})

test('a runtime subscription holds the cursor until its history has come', () => {
  const c = new Cursor('e-10')
  c.hold('b') // WebSocket subscribe frame for b, last_id e-10
  assert.ok(c.accept('a', 'e-15')) // live message of a, queued before b's notice
  assert.equal(c.id, 'e-10', 'a drop now must replay b from where it started')
  c.subscribed('b')
  assert.ok(c.accept('b', 'e-12'), "b's history is not a duplicate of a's newer message")
  assert.ok(c.accept('b', 'e-14'))
  assert.equal(c.id, 'e-10', 'still inside b history')
  assert.ok(c.accept('a', 'e-16'))
  assert.equal(c.id, 'e-16', 'history over')
})

test('a hold with nothing to replay costs only duplicates', () => {
  const c = new Cursor('e-10')
  c.hold('b')
  c.subscribed('b')
  assert.equal(c.id, 'e-10')
  c.fresh()
  assert.equal(c.id, 'e-10')
})
