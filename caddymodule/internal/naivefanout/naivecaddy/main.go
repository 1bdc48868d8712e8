// Command naivecaddy is standard Caddy with the naivefanout baseline in
// place of comet, the server BenchmarkHTTP2Subscribers compares comet
// against, and the held_floor handler it measures both against. It is a
// test fixture, not something to deploy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/cometbox/cometbox/caddymodule/internal/naivefanout"
)

func main() {
	caddycmd.Main()
}
