//go:build race

package caddymodule_test

// raceDetector tells that this run, and the Caddy it builds, are
// instrumented by the race detector, whose every frame is larger.
const raceDetector = true
