// Package cometjs embeds the browser client, so that the comet handler can
// serve it at {prefix}/client.js from the binary, with no build step on the
// server.
package cometjs

import _ "embed"

// Classic is the classic-script build of the client: it defines the global
// `Comet` when loaded with <script src>.
//
//go:embed dist/comet.js
var Classic []byte
