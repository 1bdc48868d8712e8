// The whole chain with real parts: Chromium, Caddy with the comet module
// (testdata/legacy.Caddyfile) and the legacy PHP chat in testdata/legacy-app
// behind it on `php -S`. Users log in and post through the PHP form; PHP
// publishes; the other user's page shows it live.
import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import http from 'node:http'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Caddy, freePort, launch, repo, until } from './harness.mjs'

const tokenKey = 'legacy-browser-test-key'
const screenshots = fileURLToPath(new URL('./screenshots/', import.meta.url))
// Bounded waits for what the push should deliver at once; generous so that
// a loaded machine does not fail the run.
const live = 10000

let php, phpLog = '', dataDir, caddy, chromium, ann, bob, ws = false

test.before(async () => {
  const phpPort = await freePort()
  caddy = new Caddy({ config: 'testdata/legacy.Caddyfile', env: { PHP_PORT: String(phpPort), COMET_TOKEN_KEY: tokenKey } })
  await caddy.start()
  dataDir = mkdtempSync(join(tmpdir(), 'cometbox-chat-'))
  php = spawn('php', ['-S', `127.0.0.1:${phpPort}`, '-t', join(repo, 'testdata/legacy-app')], {
    env: { ...process.env, COMET_PUBLISH_URL: `${caddy.url}/comet`, COMET_TOKEN_KEY: tokenKey, CHAT_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const keep = (b) => (phpLog = (phpLog + b).slice(-20000))
  php.stdout.on('data', keep)
  php.stderr.on('data', keep)
  await until(async () => {
    if (php.exitCode != null) throw new Error('php -S exited:\n' + phpLog)
    return (await fetch(`${caddy.url}/login.php`)).status === 200
  }, 10000, 'php -S behind caddy')
  ws = await caddy.wsAvailable('room.lobby')
  chromium = await launch()
  ann = await login('ann')
  bob = await login('bob')
})

test.after(async () => {
  await chromium?.close()
  if (php && php.exitCode == null) {
    php.kill('SIGKILL')
    await new Promise((r) => php.once('exit', r))
  }
  await caddy?.stop()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

// login opens a context of its own (its own cookie jar) and logs in
// through the form; it returns the context and the room page.
async function login(name) {
  const context = await chromium.newContext({ viewport: { width: 720, height: 540 } })
  const page = await context.newPage()
  page.on('pageerror', (e) => console.error(`${name}'s page:`, e.message))
  // Every message the client delivers, duplicates included (the page
  // itself drops those by id, so its list alone cannot show them).
  await context.addInitScript(() => {
    window.delivered = []
    let Comet
    Object.defineProperty(window, 'Comet', {
      configurable: true,
      get: () => Comet,
      set: (C) => {
        Comet = class extends C {
          constructor(...args) {
            super(...args)
            this.on('message', (data, env) => window.delivered.push([env.channel, data && data.id]))
          }
        }
      },
    })
  })
  await page.goto(`${caddy.url}/login.php`)
  await page.fill('input[name=name]', name)
  await Promise.all([page.waitForURL(/\/index\.php/), page.click('button[type=submit]')])
  assert.equal(await page.textContent('#me'), name)
  return { context, page }
}

// room (re)loads a user's room page, with the transports pinned, and waits
// until its push connection is open.
async function room(user, transport) {
  await user.page.goto(`${caddy.url}/index.php${transport ? '?transports=' + transport : ''}`)
  await user.page.waitForSelector('#chat[data-state=open]', { timeout: live })
  return user.page
}

// say posts through the user's form, as a person does, and returns the message id.
async function say(user, text) {
  const page = user.page
  await page.fill('form.say input[name=text]', text)
  await Promise.all([page.waitForURL(/\/index\.php#m\d+$/), page.click('form.say button[type=submit]')])
  assert.equal(await page.$('.notice'), null, 'no "live delivery is unavailable" notice')
  return Number(/#m(\d+)$/.exec(page.url())[1])
}

// send is one HTTP request on a connection of its own: a reload closes the
// old config's idle connections, which a pooled client would reuse.
function send(path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${caddy.url}${path}`, { method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

// postFromNode posts with the user's session cookie and CSRF token, so
// that posts can run while the browser page stays put. A connection that
// a reload drops before the answer is retried only when the message was
// not saved: the form has no idempotency key.
async function postFromNode(user, text) {
  const cookie = (await user.context.cookies(caddy.url)).map((c) => `${c.name}=${c.value}`).join('; ')
  for (let attempt = 1; ; attempt++) {
    try {
      const { text: html } = await send('/index.php', { headers: { cookie } })
      // (The texts posted here are plain words: no need to escape them.)
      const saved = new RegExp(`<li id="m(\\d+)">(?:(?!</li>).)*<span class="text">${text}</span>`, 's').exec(html)
      if (attempt > 1 && saved) return Number(saved[1])
      const csrf = /name="csrf" value="([0-9a-f]+)"/.exec(html)[1]
      const res = await send('/post.php', {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, text }).toString(),
      })
      assert.equal(res.status, 303, `post ${JSON.stringify(text)}: ${res.text}`)
      return Number(/#m(\d+)$/.exec(res.location)[1])
    } catch (e) {
      if (attempt >= 3 || !/ECONNRESET|socket hang up/.test(e.message + e.code)) throw e
    }
  }
}

// shows waits until the page lists message id, live.
async function shows(page, id, text) {
  await page.waitForFunction(([id, text]) => {
    const li = document.getElementById('m' + id)
    return li && li.querySelector('.text').textContent === text
  }, [id, text], { timeout: live, polling: 50 })
}

for (const transport of ['ws', 'sse', 'stream', 'longpoll']) {
  test(`${transport}: a message ann posts through the PHP form appears live on bob's page`, async (t) => {
    if (transport === 'ws' && !ws) return t.skip('server does not answer the WebSocket upgrade')
    const page = await room(bob, transport)
    assert.equal(await page.getAttribute('#chat', 'data-transport'), transport)
    await room(ann)
    // A reload would drop this mark.
    await page.evaluate(() => (window.stayed = true))
    const text = `hello bob over ${transport} <b>&</b>`
    const id = await say(ann, text)
    await shows(page, id, text)
    assert.equal(await page.evaluate(() => window.stayed), true, 'shown without a reload')
    assert.equal(await page.$$eval('#messages .text b', (bs) => bs.length), 0, 'message text is not HTML')
  })
}

test("bob's token opens user.bob only; a mention from ann reaches bob's page live", async () => {
  const page = await room(bob)
  const token = await page.getAttribute('#chat', 'data-token')
  assert.ok(token, 'the page carries a subscribe token')
  const status = (ch) => page.evaluate(async ([ch, token]) =>
    (await fetch(`/comet/sub/${ch}?wait=0&token=${encodeURIComponent(token)}`)).status, [ch, token])
  assert.equal(await status('user.ann'), 403, "bob's token on user.ann")
  assert.equal(await status('user.bob'), 200, "bob's token on user.bob")

  await room(ann)
  const id = await say(ann, 'psst @bob, lunch?')
  await page.waitForFunction(() => Array.from(document.querySelectorAll('#mentions li'))
    .some((li) => li.textContent === 'ann mentioned you: psst @bob, lunch?'), null, { timeout: live, polling: 50 })
  await shows(page, id, 'psst @bob, lunch?')
  const mentions = await page.evaluate(() => window.delivered.filter(([ch]) => ch === 'user.bob').map(([, id]) => id))
  assert.deepEqual(mentions, [id], 'the mention once, on bob\'s channel')
})

test('messages PHP publishes before, during and after a Caddy reload all reach a page that stays', async () => {
  const page = await room(bob)
  await page.evaluate(() => (window.delivered.length = 0))
  const posts = []
  const post = async (text) => posts.push([await postFromNode(ann, text), text])
  for (let i = 1; i <= 3; i++) await post(`before reload ${i}`)
  // The reload and the posts overlap: PHP publishes while the old config
  // drains and the new one takes over.
  const reloading = caddy.reload()
  for (let i = 1; i <= 3; i++) await post(`during reload ${i}`)
  await reloading
  for (let i = 1; i <= 3; i++) await post(`after reload ${i}`)
  await caddy.reload()
  await post('after a second reload')

  for (const [id, text] of posts) await shows(page, id, text)
  const ids = posts.map(([id]) => id)
  const listed = await page.$$eval('#messages li', (lis) => lis.map((li) => Number(li.id.slice(1))))
  assert.deepEqual(listed.slice(-ids.length), ids, 'every message once, in order, at the end of the list')
  const delivered = await page.evaluate(() => window.delivered.filter(([ch]) => ch === 'room.lobby').map(([, id]) => id))
  assert.deepEqual(delivered, ids, 'the client delivered each message exactly once')

  // The demo picture for the README: bob's room after the exchange.
  mkdirSync(screenshots, { recursive: true })
  await page.screenshot({ path: join(screenshots, 'legacy-demo.png'), fullPage: true })
})
