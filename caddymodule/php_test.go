package caddymodule_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPHPPublisher runs the PHP publisher's own suite, php/tests/run.php,
// against a real Caddy booted from testdata/php.Caddyfile: both PHP
// transports, errors (down, 403, 413), retries with one Idempotency-Key,
// the XML format, a unix socket and subscribe tokens.
func TestPHPPublisher(t *testing.T) {
	php := requirePHP(t)
	socket := filepath.Join(t.TempDir(), "comet.sock")
	srv := startCaddy(t, "php.Caddyfile", "COMET_SOCKET="+socket)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, php, filepath.Join("..", "php", "tests", "run.php"))
	cmd.Env = append(os.Environ(),
		"COMET_URL="+srv.baseURL+"/comet",
		"COMET_KEYED_URL="+srv.baseURL+"/keyed",
		"COMET_KEYED_KEY=s3cret",
		"COMET_SMALL_URL="+srv.baseURL+"/small",
		"COMET_SOCKET="+socket,
		"TMPDIR="+t.TempDir(),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("php/tests/run.php: %v\n%s", err, out)
	}
	t.Logf("php/tests/run.php:\n%s", out)
}

// requirePHP finds the php binary. PHP is part of the test environment (the
// CI script installs Debian's php-cli), so a missing php fails the test
// rather than skipping it: a skipped suite would pass unnoticed.
func requirePHP(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatal("php is not on PATH: install php-cli with the curl extension (apt-get install php-cli php-curl); the PHP tests are not optional")
	}
	return php
}
