// Builds the client from src/ with nothing but node: the ES modules are put
// in dependency order into one scope, their import lines dropped and their
// exports turned into plain declarations, comments and indentation removed.
//   dist/comet.mjs  ES module exporting Comet
//   dist/comet.js   classic script (an IIFE) defining window.Comet; the Go
//                   module embeds it and serves it at {prefix}/client.js
// `node build.mjs --check` writes nothing and fails when dist/ is stale.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(fileURLToPath(import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

// bundle returns the code of entry and everything it imports, each module
// once, dependencies first.
export function bundle(entry) {
  const done = new Set()
  const names = new Map()
  const parts = []
  const visit = (file) => {
    if (done.has(file)) return
    done.add(file)
    const src = readFileSync(file, 'utf8')
    const body = src.replace(/^import\s*\{[^}]*\}\s*from\s*'([^']+)'\s*\n/gm, (_, spec) => {
      visit(resolve(dirname(file), spec))
      return ''
    })
    if (/^\s*import\b/m.test(body)) throw new Error(`${file}: only single-line named imports are supported`)
    if (/^export\s+(default|\{|\*)/m.test(body)) throw new Error(`${file}: only "export function|class|const" is supported`)
    // One scope for all modules: a name declared twice would collide.
    for (const [, name] of body.matchAll(/^(?:export\s+)?(?:function|class|const|let)\s+(\w+)/gm)) {
      if (names.has(name)) throw new Error(`${file}: ${name} is also declared in ${names.get(name)}`)
      names.set(name, file)
    }
    parts.push(body.replace(/^export\s+/gm, ''))
  }
  visit(entry)
  return parts.join('\n')
}

// strip removes comments and indentation. It knows strings, template
// literals without nested templates, and regular expression literals (a
// slash where an operand is expected), which is all src/ uses.
export function strip(code) {
  let out = ''
  let i = 0
  let last = '' // the last significant character written
  while (i < code.length) {
    const ch = code[i]
    const next = code[i + 1]
    if (ch === '/' && next === '/') {
      while (i < code.length && code[i] !== '\n') i++
      continue
    }
    if (ch === '/' && next === '*') {
      i = code.indexOf('*/', i + 2) + 2
      if (i < 2) throw new Error('unterminated comment')
      continue
    }
    const regex = ch === '/' && (last === '' || '(,=:[!&|?{};'.includes(last) || /\b(return|typeof)$/.test(out))
    if (ch === '"' || ch === "'" || ch === '`' || regex) {
      let j = i + 1
      let klass = false
      for (; j < code.length; j++) {
        const c = code[j]
        if (c === '\\') j++
        else if (regex && c === '[') klass = true
        else if (regex && c === ']') klass = false
        else if (c === ch && !klass) break
        else if (c === '\n' && ch !== '`') throw new Error(`unterminated literal at ${i}: ${code.slice(i, i + 40)}`)
      }
      out += code.slice(i, j + 1)
      i = j + 1
      last = ch
      continue
    }
    out += ch
    if (!/\s/.test(ch)) last = ch
    i++
  }
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('\n')
}

export function build() {
  const code = strip(bundle(join(root, 'src', 'comet.js')))
  const banner = `/*! cometbox client ${pkg.version} | Apache-2.0 | built from js/src by js/build.mjs: do not edit */\n`
  return {
    'comet.mjs': banner + code + '\nexport { Comet }\n',
    'comet.js': banner + "(function (global) {\n'use strict'\n" + code + '\nglobal.Comet = Comet\n})(typeof self !== "undefined" ? self : this)\n',
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = build()
  const dist = join(root, 'dist')
  if (process.argv.includes('--check')) {
    const stale = Object.keys(files).filter((f) => {
      try {
        return readFileSync(join(dist, f), 'utf8') !== files[f]
      } catch {
        return true
      }
    })
    if (stale.length) {
      console.error(`dist/ is stale (${stale.join(', ')}): run npm run build`)
      process.exit(1)
    }
  } else {
    mkdirSync(dist, { recursive: true })
    for (const [f, text] of Object.entries(files)) writeFileSync(join(dist, f), text)
    console.log(Object.entries(files).map(([f, t]) => `dist/${f} ${t.length} B`).join('\n'))
  }
}
