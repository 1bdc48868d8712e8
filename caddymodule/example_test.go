package caddymodule_test

import (
	"os/exec"
	"testing"
)

// TestCaddyfileExampleValidates checks that the Caddyfile the README runs
// the product with still parses and provisions, with every option it
// shows.
func TestCaddyfileExampleValidates(t *testing.T) {
	out, err := exec.Command(caddyBinary, "validate", "--config", "../Caddyfile.example", "--adapter", "caddyfile").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy validate Caddyfile.example: %v\n%s", err, out)
	}
}
