// Command caddy is standard Caddy with the cometbox module plugged in: what
// `xcaddy build --with github.com/cometbox/cometbox/caddymodule` produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/cometbox/cometbox/caddymodule"
)

func main() {
	caddycmd.Main()
}
