import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import vm from 'node:vm'
import { build, strip } from '../../build.mjs'

const dist = new URL('../../dist/', import.meta.url)

test('dist/ is built from src/ (run npm run build)', () => {
  for (const [name, text] of Object.entries(build())) {
    assert.ok(readFileSync(new URL(name, dist), 'utf8') === text, `dist/${name} is stale: run "npm run build" in js/`)
  }
})

test('classic build is under 6 KB gzipped', () => {
  const size = gzipSync(readFileSync(new URL('comet.js', dist)), { level: 9 }).length
  assert.ok(size < 6 * 1024, `dist/comet.js is ${size} B gzipped`)
})

test('classic build defines the global Comet and nothing else', () => {
  const sandbox = {}
  sandbox.self = sandbox
  vm.runInNewContext(readFileSync(new URL('comet.js', dist), 'utf8'), sandbox)
  assert.deepEqual(Object.keys(sandbox).sort(), ['Comet', 'self'])
  assert.equal(typeof sandbox.Comet, 'function')
})

test('ESM build exports Comet', async () => {
  const mod = await import(new URL('comet.mjs', dist))
  assert.deepEqual(Object.keys(mod), ['Comet'])
})

test('strip keeps strings, templates and regular expressions', () => {
  const src = [
    "const a = '// not a comment' // a comment",
    'const b = "/* nor this */" /* but this */',
    'const c = /\\/\\/[/*]x/.test(a) && `${a} // kept`',
    'const d = 4 / 2 / 1',
    '    return x',
  ].join('\n')
  assert.equal(strip(src), [
    "const a = '// not a comment'",
    'const b = "/* nor this */"',
    'const c = /\\/\\/[/*]x/.test(a) && `${a} // kept`',
    'const d = 4 / 2 / 1',
    'return x',
  ].join('\n'))
})
