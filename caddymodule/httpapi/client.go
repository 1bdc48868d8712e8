package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	cometjs "github.com/cometbox/cometbox/js"
)

// clientETag is computed once: the client is fixed for the binary's life.
var clientETag = sync.OnceValue(func() string {
	sum := sha256.Sum256(cometjs.Classic)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
})

// serveClient answers GET {prefix}/client.js with the embedded browser
// client. It is revalidated by ETag rather than cached for long, so an
// upgraded server is picked up by pages without a cache-busting URL.
func (a *API) serveClient(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return allow(w, "GET, HEAD")
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", clientETag())
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "client.js", time.Time{}, bytes.NewReader(cometjs.Classic))
	return nil
}
